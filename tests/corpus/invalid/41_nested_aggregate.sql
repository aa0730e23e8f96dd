-- error: BindError 2:17 nested
SELECT url, SUM(COUNT(*)) FROM clicks GROUP BY url;
