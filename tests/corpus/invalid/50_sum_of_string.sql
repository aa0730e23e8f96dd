-- error: BindError 2:17 SUM needs a number, got STRING
SELECT user_id, SUM(url) AS total FROM clicks GROUP BY user_id;
