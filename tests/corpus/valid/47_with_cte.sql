WITH big AS (
  SELECT account, amount, ts FROM transactions WHERE amount > 1000
)
SELECT account, window_start, window_end, COUNT(*) AS big_payments
FROM big
GROUP BY account, TUMBLE(ts, INTERVAL '1' HOUR);
