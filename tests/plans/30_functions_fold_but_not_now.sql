SELECT user_id, date_trunc('hour', ts) AS hour_start FROM (SELECT * FROM clicks WHERE regexp_matches(url, '^https://') AND ts > to_timestamp(1700000000)) WHERE ts < now()
