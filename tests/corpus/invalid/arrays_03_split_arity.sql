-- error: BindError 2:8 function string_split does not take 1 argument(s)
SELECT split(merchant) AS parts FROM transactions;
