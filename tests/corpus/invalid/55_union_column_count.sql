-- error: BindError 4:1 UNION
SELECT url FROM clicks
UNION ALL
SELECT url, user_id FROM clicks;
