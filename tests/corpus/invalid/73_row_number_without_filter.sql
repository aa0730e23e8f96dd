-- error: BindError 2:17 ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) is supported only to keep the first rows
SELECT user_id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts) AS rn
FROM clicks;
