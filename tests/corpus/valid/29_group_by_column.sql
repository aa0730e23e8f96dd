SELECT url, COUNT(*) AS hits, SUM(duration_ms) AS dwell_ms
FROM clicks
GROUP BY url;
