-- error: BindError 3:37 path 'tests/corpus/files/missing.ndjson' does not exist
CREATE STREAM events (user_id STRING, n BIGINT, ts TIMESTAMP)
  WITH (connector = 'files', path = 'tests/corpus/files/missing.ndjson');
