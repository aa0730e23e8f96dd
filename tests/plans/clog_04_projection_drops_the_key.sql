SELECT n FROM (SELECT account, COUNT(*) AS n FROM transactions GROUP BY account) WHERE n >= 3
