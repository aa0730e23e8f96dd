SELECT window_start, window_end, account, COUNT(*) AS n
FROM TABLE(TUMBLE(TABLE transactions, DESCRIPTOR(ts), INTERVAL '10' MINUTE))
GROUP BY window_start, window_end, account;
