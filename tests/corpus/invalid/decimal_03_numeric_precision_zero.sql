-- error: BindError 2:53 NUMERIC precision must be between 1 and 38, got 0
SELECT tx_id FROM transactions WHERE CAST(amount AS NUMERIC(0)) > 1;
