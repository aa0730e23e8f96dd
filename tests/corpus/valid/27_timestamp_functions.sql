SELECT tx_id,
       hour(ts) AS hour_of_day,
       epoch_ms(ts) AS ms,
       to_timestamp_ms(epoch_ms(ts) + 1000) AS one_second_later
FROM transactions;
