-- Distinct users per campaign per minute.
SELECT campaign_id, window_start, COUNT(DISTINCT user_id) AS unique_users, MIN(event_time) AS first_seen
FROM events JOIN campaigns USING (ad_id)
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '1' MINUTE);
