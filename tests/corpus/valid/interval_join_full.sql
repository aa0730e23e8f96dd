SELECT c.user_id, e.user_id AS event_user, c.url, e.ad_id
FROM clicks c FULL OUTER JOIN events e
  ON c.user_id = e.user_id AND e.event_time BETWEEN c.ts AND c.ts + INTERVAL '30' SECOND;
