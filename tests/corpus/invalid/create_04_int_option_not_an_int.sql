-- error: BindError 4:22 option batch_size must be an integer, got 'abc'
CREATE STREAM orders (order_id BIGINT, ts TIMESTAMP)
  WITH (connector = 'redis', stream = 'orders',
        batch_size = 'abc');
