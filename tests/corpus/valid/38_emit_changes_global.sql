SELECT account, SUM(amount) AS balance_change
FROM transactions
GROUP BY account
EMIT CHANGES;
