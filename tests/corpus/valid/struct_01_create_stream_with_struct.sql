CREATE STREAM orders (
  id BIGINT,
  item STRUCT(sku STRING, qty INT, price ROW<amount DOUBLE, currency STRING>),
  ts TIMESTAMP
) WITH (connector = 'files', path = 'orders/', format = 'ndjson');
