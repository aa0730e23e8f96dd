SELECT DISTINCT n FROM (SELECT account, COUNT(*) AS n FROM transactions WHERE amount > 0 GROUP BY account) WHERE n > 1
