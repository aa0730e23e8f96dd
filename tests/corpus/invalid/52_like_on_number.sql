-- error: BindError 2:30 LIKE needs a STRING
SELECT url FROM clicks WHERE duration_ms LIKE '1%';
