SELECT user_id, page_id
FROM events
WHERE ip_address IS NULL OR ad_id IS NOT NULL;
