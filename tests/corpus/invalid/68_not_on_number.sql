-- error: BindError 2:30 NOT needs a BOOLEAN, got BIGINT
SELECT url FROM clicks WHERE NOT duration_ms;
