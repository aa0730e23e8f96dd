SELECT user_id, url FROM clicks WHERE duration_ms > 1000 + 500
