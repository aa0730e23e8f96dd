SELECT window_start, window_end, account, MAX(amount) AS largest
FROM TABLE(SESSION(TABLE transactions PARTITION BY account, DESCRIPTOR(ts), INTERVAL '30' MINUTE))
GROUP BY window_start, window_end, account;
