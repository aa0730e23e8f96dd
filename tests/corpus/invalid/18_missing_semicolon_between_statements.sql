-- error: ParseError 3:1 SELECT
SELECT url FROM clicks
SELECT user_id FROM clicks;
