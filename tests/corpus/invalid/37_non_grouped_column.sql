-- error: BindError 2:13 column 'user_id' must appear in GROUP BY or be used in an aggregate function
SELECT url, user_id, COUNT(*) AS hits
FROM clicks
GROUP BY url;
