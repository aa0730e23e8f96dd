SELECT * FROM clicks
WHERE NOT url = 'home' AND NOT (duration_ms < 10 OR user_id IS NULL);
