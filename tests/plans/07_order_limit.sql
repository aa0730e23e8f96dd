SELECT account, SUM(amount) AS total FROM transactions GROUP BY account ORDER BY total DESC LIMIT 10
