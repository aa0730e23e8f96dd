-- error: ParseError 4:41 ';'
SELECT url
FROM clicks
WHERE (duration_ms > 10 AND url = 'home';
