-- error: BindError 5:7 without windows only the first row per key is kept (rn = 1, deduplication)
SELECT *
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY duration_ms DESC) AS rn
      FROM clicks)
WHERE rn <= 3;
