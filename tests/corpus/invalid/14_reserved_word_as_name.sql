-- error: ParseError 2:8 select
SELECT select FROM clicks;
