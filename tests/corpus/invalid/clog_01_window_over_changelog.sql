-- error: BindError 4:10 a windowed aggregate over a changelog
SELECT window_start, COUNT(*) AS users
FROM (SELECT user_id, MAX(ts) AS last_click FROM clicks GROUP BY user_id)
GROUP BY TUMBLE(last_click, INTERVAL '1' MINUTE)
