-- error: BindError 2:40 MAP types are not supported
CREATE STREAM orders (id BIGINT, attrs MAP(STRING, BIGINT))
  WITH (connector = 'memory');
