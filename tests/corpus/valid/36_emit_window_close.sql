SELECT window_start, window_end, COUNT(*) AS events
FROM events
GROUP BY TUMBLE(event_time, INTERVAL '10' SECOND)
EMIT ON WINDOW CLOSE;
