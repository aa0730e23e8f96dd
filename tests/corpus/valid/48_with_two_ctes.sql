-- A later CTE reads an earlier one.
WITH views AS (
  SELECT ad_id, event_time FROM events WHERE event_type = 'view'
), labelled AS (
  SELECT v.ad_id, c.campaign_id, v.event_time
  FROM views v JOIN campaigns c ON v.ad_id = c.ad_id
)
SELECT campaign_id, COUNT(*) AS views
FROM labelled
GROUP BY campaign_id;
