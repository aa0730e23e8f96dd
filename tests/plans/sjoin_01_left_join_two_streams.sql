SELECT c.user_id, c.url, e.ad_id
FROM clicks c LEFT JOIN events e
  ON c.user_id = e.user_id AND e.event_type = 'view'
WHERE c.duration_ms > 100
