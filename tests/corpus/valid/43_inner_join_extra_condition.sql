-- A non-equality condition of an inner join becomes a filter above it.
SELECT c.user_id, c.url, u.age
FROM clicks c
JOIN users u ON u.user_id = c.user_id AND c.duration_ms > u.age * 1000;
