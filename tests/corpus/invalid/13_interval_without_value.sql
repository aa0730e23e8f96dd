-- error: ParseError 2:22 SECOND
SELECT ts + INTERVAL SECOND FROM clicks;
