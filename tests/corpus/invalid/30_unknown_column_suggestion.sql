-- error: BindError 5:7 unknown column 'amuont' (did you mean 'amount'
SELECT tx_id,
       account
FROM transactions
WHERE amuont > 100;
