-- YSB as a query (not an insert), with explicit aliases and ON.
SELECT c.campaign_id, window_start, window_end, COUNT(*) AS views
FROM events e JOIN campaigns c ON e.ad_id = c.ad_id
WHERE e.event_type = 'view'
GROUP BY c.campaign_id, TUMBLE(e.event_time, INTERVAL '10' SECOND);
