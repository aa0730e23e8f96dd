-- error: BindError 3:31 equal
SELECT *
FROM clicks c JOIN users u ON c.duration_ms > u.age;
