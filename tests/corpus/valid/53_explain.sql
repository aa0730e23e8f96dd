EXPLAIN SELECT url, COUNT(*) AS hits FROM clicks GROUP BY url;
