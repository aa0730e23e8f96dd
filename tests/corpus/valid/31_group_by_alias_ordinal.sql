SELECT lower(country) AS region, age / 10 AS decade, COUNT(*) AS people
FROM users
GROUP BY 1, decade;
