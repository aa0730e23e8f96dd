-- error: ParseError 2:38 ')'
SELECT url FROM clicks WHERE url IN ();
