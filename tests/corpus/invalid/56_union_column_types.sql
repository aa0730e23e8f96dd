-- error: BindError 4:8 UNION
SELECT url FROM clicks
UNION ALL
SELECT duration_ms FROM clicks;
