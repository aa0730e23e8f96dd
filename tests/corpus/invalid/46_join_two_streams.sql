-- error: BindError 3:18 joining two streams is not supported
SELECT *
FROM clicks JOIN events USING (user_id);
