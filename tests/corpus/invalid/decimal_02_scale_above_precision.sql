-- error: BindError 2:42 DECIMAL scale cannot be greater than the precision, got DECIMAL(5, 6)
CREATE STREAM prices (item STRING, price DECIMAL(5, 6))
  WITH (connector = 'files', path = 'data/prices/', format = 'ndjson');
