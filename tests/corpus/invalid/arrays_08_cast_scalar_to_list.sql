-- error: BindError 2:8 cannot CAST DOUBLE to DOUBLE[]
SELECT CAST(amount AS DOUBLE[]) AS amounts FROM transactions;
