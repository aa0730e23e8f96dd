SELECT account, SUM(amount) AS amount FROM transactions GROUP BY account UNION ALL SELECT account, amount FROM transactions WHERE amount > 100
