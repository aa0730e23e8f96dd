-- error: BindError 2:30 BOOLEAN
SELECT url FROM clicks WHERE duration_ms;
