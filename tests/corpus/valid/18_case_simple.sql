-- A simple CASE without ELSE: the missing branch is NULL.
SELECT user_id,
       CASE event_type WHEN 'view' THEN 1 WHEN 'click' THEN 2 WHEN 'purchase' THEN 3 END AS event_code
FROM events;
