-- error: BindError 2:35 invalid TIMESTAMP literal
SELECT url FROM clicks WHERE ts > TIMESTAMP '2024-13-45 00:00:00';
