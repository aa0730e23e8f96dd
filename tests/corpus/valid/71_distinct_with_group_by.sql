SELECT DISTINCT country, COUNT(*) AS people
FROM users
GROUP BY country, age;
