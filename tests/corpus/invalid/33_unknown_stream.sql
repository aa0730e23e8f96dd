-- error: BindError 2:15 unknown stream or table 'cliks' (did you mean 'clicks'?)
SELECT * FROM cliks;
