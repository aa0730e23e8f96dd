-- error: ParseError 2:18 unexpected 'FROM'
SELECT merchant[ FROM transactions;
