SELECT v.ad_id, v.hour
FROM (
  SELECT ad_id, hour(event_time) AS hour
  FROM events
  WHERE event_type = 'view'
) AS v
WHERE v.hour >= 9;
