SELECT *
FROM clicks c RIGHT JOIN events e
  ON c.user_id = e.user_id AND c.ts BETWEEN e.event_time - INTERVAL '2' SECOND AND e.event_time;
