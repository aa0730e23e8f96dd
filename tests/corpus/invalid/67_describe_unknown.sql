-- error: BindError 2:10 unknown stream or table 'transaction' (did you mean 'transactions'?)
DESCRIBE transaction;
