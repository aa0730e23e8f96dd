-- error: BindError 3:39 cannot be read as parquet
CREATE STREAM events (user_id STRING, n BIGINT)
  WITH (connector = 'files', format = 'parquet', path = 'tests/corpus/files/events.ndjson');
