-- error: BindError 3:18 a join of two streams needs a time bound in ON
SELECT *
FROM clicks JOIN events USING (user_id);
