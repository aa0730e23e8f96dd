-- error: BindError 2:8 cannot subscript a DOUBLE: [i] needs a list
SELECT amount[1] FROM transactions;
