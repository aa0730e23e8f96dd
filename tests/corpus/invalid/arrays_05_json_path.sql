-- error: BindError 2:8 unsupported JSON path 'a.b'
SELECT json_value(merchant, 'a.b') FROM transactions;
