-- error: ParseError 2:25 ')'
SELECT (duration_ms + 1)) AS d FROM clicks;
