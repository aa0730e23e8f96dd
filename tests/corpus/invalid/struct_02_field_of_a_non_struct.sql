-- error: BindError 2:15 cannot read field 'cents' of amount: it is DOUBLE, not a STRUCT
SELECT tx_id, amount.cents
FROM transactions;
