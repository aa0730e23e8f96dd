-- error: BindError 3:35 user_id
SELECT *
FROM events JOIN campaigns USING (user_id);
