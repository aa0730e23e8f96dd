-- error: BindError 2:48 aggregate
SELECT url, COUNT(*) FROM clicks GROUP BY url, SUM(duration_ms);
