SELECT user_id, campaign_id, event_type
FROM events JOIN campaigns USING (ad_id);
