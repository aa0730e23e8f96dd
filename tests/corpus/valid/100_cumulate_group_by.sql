SELECT account, window_start, window_end, SUM(amount) AS spent
FROM transactions
GROUP BY account, CUMULATE(ts, INTERVAL '1' MINUTE, INTERVAL '1' HOUR);
