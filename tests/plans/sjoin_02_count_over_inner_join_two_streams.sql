SELECT e.ad_id, COUNT(*) AS clicks
FROM clicks c JOIN events e USING (user_id)
GROUP BY e.ad_id
