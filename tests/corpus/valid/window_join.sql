SELECT c.user_id, c.window_start, c.window_end, c.clicks, e.events
FROM (SELECT user_id, window_start, window_end, COUNT(*) AS clicks FROM clicks
      GROUP BY user_id, TUMBLE(ts, INTERVAL '1' MINUTE)) c
JOIN (SELECT user_id, window_start, window_end, COUNT(*) AS events FROM events
      GROUP BY user_id, TUMBLE(event_time, INTERVAL '1' MINUTE)) e
  ON c.user_id = e.user_id AND c.window_start = e.window_start AND c.window_end = e.window_end;
