-- error: ParseError 2:8 INTA
INSERT INTA out
SELECT * FROM clicks;
