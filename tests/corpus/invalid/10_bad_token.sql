-- error: ParseError 2:47 $
SELECT url FROM clicks WHERE duration_ms > 10 $ 5;
