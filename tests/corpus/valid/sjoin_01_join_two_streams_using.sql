SELECT *
FROM clicks JOIN events USING (user_id);
