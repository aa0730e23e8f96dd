SELECT c.user_id, c.ts, e.event_time
FROM clicks c LEFT OUTER JOIN events e
  ON e.user_id = c.user_id AND e.event_time >= c.ts AND e.event_time < c.ts + INTERVAL '1' MINUTE;
