SELECT e.*, c.campaign_id
FROM events AS e
JOIN campaigns AS c ON e.ad_id = c.ad_id
WHERE e.ad_type IN ('banner', 'modal');
