SELECT user_id FROM clicks
UNION
SELECT user_id FROM events;
