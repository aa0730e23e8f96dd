SELECT t.tx_id, r.amount, {'id': tx_id, 'money': {'amount': t.r.amount}} AS packed
FROM (SELECT tx_id, named_struct('amount', amount, 'account', account) AS r FROM transactions) AS t
WHERE t.r.account <> 'x';
