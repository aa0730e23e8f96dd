-- error: BindError 4:7 REGEXP_MATCHES: invalid regular expression '(unclosed'
SELECT url
FROM clicks
WHERE regexp_matches(url, '(unclosed');
