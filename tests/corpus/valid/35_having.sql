SELECT url, COUNT(*) AS hits
FROM clicks
GROUP BY url
HAVING COUNT(*) > 100 AND AVG(duration_ms) > 500;
