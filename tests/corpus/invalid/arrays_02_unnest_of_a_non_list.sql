-- error: BindError 2:39 UNNEST needs a list, got DOUBLE
SELECT x FROM transactions CROSS JOIN UNNEST(amount) AS t(x);
