-- error: ParseError 2:44 AND
SELECT url FROM clicks WHERE duration_ms > AND url = 'a';
