SELECT c.user_id, u.country, c.duration_ms * 2 AS twice
FROM clicks c JOIN users u ON c.user_id = u.user_id
WHERE u.age >= 18 AND c.duration_ms > 0
