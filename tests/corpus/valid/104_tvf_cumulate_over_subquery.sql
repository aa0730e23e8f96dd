SELECT window_end, COUNT(*) AS big
FROM TABLE(CUMULATE(TABLE (SELECT ts FROM transactions WHERE amount > 100), DESCRIPTOR(ts),
                    INTERVAL '1' HOUR, INTERVAL '1' DAY))
GROUP BY window_start, window_end;
