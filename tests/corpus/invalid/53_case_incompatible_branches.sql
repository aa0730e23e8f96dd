-- error: BindError 2:8 incompatible
SELECT CASE WHEN ok THEN 'hot' ELSE 1 END AS label FROM sensors;
