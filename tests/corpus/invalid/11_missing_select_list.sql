-- error: ParseError 2:8 FROM
SELECT FROM clicks;
