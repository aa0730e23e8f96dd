-- error: BindError 2:43 3
SELECT url, COUNT(*) FROM clicks GROUP BY 3;
