-- error: BindError 2:49 invalid interval
SELECT COUNT(*) FROM clicks GROUP BY TUMBLE(ts, INTERVAL 'ten' SECOND);
