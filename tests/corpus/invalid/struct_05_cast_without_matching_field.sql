-- error: BindError 2:8 a STRUCT cast matches fields by name, and none match
SELECT CAST(named_struct('a', amount) AS STRUCT(b DOUBLE))
FROM transactions;
