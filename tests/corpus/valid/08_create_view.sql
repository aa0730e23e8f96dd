CREATE VIEW ad_views AS
SELECT ad_id, event_time
FROM events
WHERE event_type = 'view';
