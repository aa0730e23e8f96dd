SELECT tx_id, amount FROM transactions WHERE amount > 0 LIMIT 10;
