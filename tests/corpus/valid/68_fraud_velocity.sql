-- Fraud velocity rule: more than 5 payments or 10000 in total within 10 minutes.
SELECT account,
       window_start,
       window_end,
       COUNT(*) AS payments,
       SUM(amount) AS total
FROM transactions
GROUP BY account, HOP(ts, INTERVAL '1' MINUTE, INTERVAL '10' MINUTE)
HAVING COUNT(*) > 5 OR SUM(amount) > 10000
EMIT ON WINDOW CLOSE;
