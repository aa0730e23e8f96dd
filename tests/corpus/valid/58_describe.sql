DESCRIBE transactions;
