-- error: ParseError 4:13 unterminated string
SELECT url
FROM clicks
WHERE url = 'home;
