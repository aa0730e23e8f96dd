-- error: ParseError 4:1 WHERE
SELECT url
FROM
WHERE duration_ms > 10;
