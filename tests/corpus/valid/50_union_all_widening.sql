-- INT and BIGINT columns line up by position: the INT side is widened.
SELECT sensor_id AS id, ts FROM sensors
UNION ALL
SELECT tx_id, ts FROM transactions;
