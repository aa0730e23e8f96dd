-- error: ParseError 2:40 url
SELECT url, COUNT(*) FROM clicks GROUP url;
