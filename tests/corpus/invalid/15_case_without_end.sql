-- error: ParseError 3:1 FROM
SELECT CASE WHEN ok THEN 1 ELSE 0
FROM sensors;
