DROP TABLE IF EXISTS no_such_table;
