-- error: BindError 3:17 unknown column 'amount'
WITH big AS (SELECT account, ts FROM transactions)
SELECT account, amount
FROM big;
