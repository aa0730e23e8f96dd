-- error: BindError 2:30 aggregate
SELECT url FROM clicks WHERE COUNT(*) > 5;
