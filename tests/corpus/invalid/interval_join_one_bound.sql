-- error: BindError 3:58 an interval join needs both a lower and an upper time bound
SELECT *
FROM clicks c JOIN events e ON c.user_id = e.user_id AND e.event_time >= c.ts;
