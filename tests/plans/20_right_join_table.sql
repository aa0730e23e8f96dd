SELECT u.user_id, u.country, COUNT(c.url) AS clicks
FROM clicks c RIGHT JOIN users u ON c.user_id = u.user_id
WHERE u.age >= 18
GROUP BY u.user_id, u.country
