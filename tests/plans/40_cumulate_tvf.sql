SELECT window_start, window_end, ad_id, COUNT(*) AS views
FROM TABLE(CUMULATE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' SECOND, INTERVAL '10' SECOND))
WHERE event_type = 'view'
GROUP BY window_start, window_end, ad_id
