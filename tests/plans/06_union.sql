SELECT user_id FROM clicks WHERE duration_ms > 10
UNION ALL
SELECT user_id FROM events WHERE event_type = 'click'
