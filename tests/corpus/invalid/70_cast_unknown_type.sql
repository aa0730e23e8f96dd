-- error: BindError 2:20 unknown type 'STRNG'
SELECT CAST(url AS STRNG) FROM clicks;
