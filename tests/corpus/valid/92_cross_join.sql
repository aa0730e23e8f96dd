-- CROSS JOIN with a table: a broadcast join with no key.
SELECT c.url, u.country
FROM clicks c CROSS JOIN users u;
