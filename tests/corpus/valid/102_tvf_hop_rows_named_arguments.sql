SELECT tx_id, window_start, window_time
FROM TABLE(HOP(DATA => TABLE transactions, TIMECOL => DESCRIPTOR(ts),
               SLIDE => INTERVAL '5' MINUTE, SIZE => INTERVAL '10' MINUTE)) AS w
WHERE w.amount > 100;
