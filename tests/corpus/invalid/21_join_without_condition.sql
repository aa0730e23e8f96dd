-- error: ParseError 4:1 WHERE
SELECT *
FROM events JOIN campaigns
WHERE event_type = 'view';
