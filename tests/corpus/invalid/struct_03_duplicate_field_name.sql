-- error: ParseError 2:67 duplicate field name 'sku'
CREATE STREAM orders (id BIGINT, item STRUCT(sku STRING, qty INT, sku BIGINT))
  WITH (connector = 'memory');
