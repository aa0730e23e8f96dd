SELECT DISTINCT merchant FROM (SELECT * FROM transactions WHERE amount > 0) WHERE merchant IS NOT NULL
