-- error: BindError 3:17 RANK() OVER (...) is not supported; only ROW_NUMBER()
SELECT *
FROM (SELECT *, RANK() OVER (PARTITION BY user_id ORDER BY ts) AS r FROM clicks)
WHERE r = 1;
