SELECT user_id, url
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id, url ORDER BY ts) AS rn FROM clicks) AS c
WHERE c.rn = 1 AND url <> '';
