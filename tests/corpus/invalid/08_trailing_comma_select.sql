-- error: ParseError 3:1 FROM
SELECT url, user_id,
FROM clicks;
