-- error: BindError 3:17 the WATERMARK column 'day' must be a TIMESTAMP, not DATE
CREATE STREAM daily (day DATE, amount DECIMAL(12, 2),
  WATERMARK FOR day AS day - INTERVAL '1' SECOND)
  WITH (connector = 'files', path = 'data/daily/', format = 'ndjson');
