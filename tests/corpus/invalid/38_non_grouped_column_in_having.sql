-- error: BindError 5:8 column 'duration_ms' must appear in GROUP BY
SELECT url, COUNT(*) AS hits
FROM clicks
GROUP BY url
HAVING duration_ms > 5;
