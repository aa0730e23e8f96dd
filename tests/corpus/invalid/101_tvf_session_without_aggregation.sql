-- error: BindError 3:6 SESSION(TABLE ...) needs an aggregation
SELECT *
FROM TABLE(SESSION(TABLE transactions PARTITION BY account, DESCRIPTOR(ts), INTERVAL '5' MINUTE));
