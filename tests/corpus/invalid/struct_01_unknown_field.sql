-- error: BindError 2:8 r has no field 'amuont' (did you mean 'amount'
SELECT r.amuont
FROM (SELECT named_struct('amount', amount) AS r FROM transactions);
