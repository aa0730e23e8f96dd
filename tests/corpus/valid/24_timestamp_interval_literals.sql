SELECT tx_id,
       ts + INTERVAL '5' MINUTE AS settle_by,
       ts - INTERVAL '1 hour' AS hour_before,
       ts - TIMESTAMP '2024-01-01 00:00:00' AS since_new_year
FROM transactions
WHERE ts >= TIMESTAMP '2024-01-01 00:00:00' AND ts < TIMESTAMP '2024-01-02T00:00:00';
