-- error: BindError 4:7 filter the row number with rn <= N, rn < N or rn = 1
SELECT *
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts) AS rn FROM clicks)
WHERE rn >= 2;
