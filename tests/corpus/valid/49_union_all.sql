SELECT user_id, url, ts FROM clicks WHERE duration_ms > 10000
UNION ALL
SELECT user_id, page_id, event_time FROM events WHERE event_type = 'click';
