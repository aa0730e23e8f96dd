SELECT c.user_id, c.url AS page, c.duration_ms / 1000 seconds
FROM clicks AS c;
