SELECT user_id, url, ts
FROM clicks
QUALIFY ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts) = 1;
