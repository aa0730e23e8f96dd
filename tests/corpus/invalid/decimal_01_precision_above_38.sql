-- error: BindError 2:30 DECIMAL precision must be between 1 and 38, got 40
SELECT tx_id, CAST(amount AS DECIMAL(40, 2)) AS exact
FROM transactions;
