-- error: BindError 2:8 operator + needs numbers, got STRING and BIGINT
SELECT 'a' + 1 AS x FROM clicks;
