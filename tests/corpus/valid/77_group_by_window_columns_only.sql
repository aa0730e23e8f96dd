SELECT window_end, MAX(amount) AS largest, MIN(amount) AS smallest
FROM transactions
GROUP BY TUMBLE(ts, INTERVAL '15' MINUTE);
