-- error: BindError 4:53 the CUMULATE max size (3600000ms) must be a multiple of its step (420000ms)
SELECT account, COUNT(*) AS n
FROM transactions
GROUP BY account, CUMULATE(ts, INTERVAL '7' MINUTE, INTERVAL '1' HOUR);
