SELECT c.url, u.country
FROM clicks c CROSS JOIN users u
WHERE c.duration_ms > 0
