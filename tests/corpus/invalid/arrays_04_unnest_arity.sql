-- error: BindError 2:8 UNNEST takes one list, got 2 argument(s)
SELECT UNNEST(split(merchant, ','), 1) FROM transactions;
