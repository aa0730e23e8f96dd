-- SELECT without FROM reads one row (the one_row connector), as in DuckDB.
SELECT 1 + 2 AS x, 'a' AS y, now() AS t;
