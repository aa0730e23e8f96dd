-- error: ParseError 2:46 ';'
SELECT url FROM clicks WHERE url IN ('a', 'b';
