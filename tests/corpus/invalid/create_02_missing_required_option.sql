-- error: BindError 3:3 option 'stream' is required
CREATE STREAM orders (order_id BIGINT, ts TIMESTAMP)
  WITH (connector = 'redis', url = 'redis://127.0.0.1:6379');
