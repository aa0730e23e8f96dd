SELECT ad_id, window_start, window_end, window_time
FROM TABLE(HOP(TABLE events, DESCRIPTOR(event_time), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
WHERE ad_type <> 'mail'
