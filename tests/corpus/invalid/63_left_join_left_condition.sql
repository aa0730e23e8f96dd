-- error: BindError 4:48 LEFT JOIN
SELECT c.url, u.country
FROM clicks c
LEFT JOIN users u ON c.user_id = u.user_id AND c.duration_ms > u.age;
