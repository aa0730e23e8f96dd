-- Clickstream sessions per country: enrich clicks with the users table first.
SELECT u.country,
       window_start,
       window_end,
       COUNT(*) AS clicks,
       COUNT(DISTINCT c.user_id) AS visitors
FROM clicks c JOIN users u ON c.user_id = u.user_id
WHERE u.age BETWEEN 18 AND 65
GROUP BY u.country, SESSION(c.ts, INTERVAL '10' MINUTE);
