-- error: BindError 2:8 cannot CAST STRING to BIGINT[]
SELECT split(merchant, ',')::ARRAY<BIGINT[]> AS parts FROM transactions;
