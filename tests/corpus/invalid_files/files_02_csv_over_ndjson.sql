-- error: BindError 3:82 cannot be read as csv: its first line is a JSON object
CREATE STREAM events (user_id STRING, n BIGINT, ts TIMESTAMP)
  WITH (connector = 'files', path = 'tests/corpus/files/events.ndjson', format = 'csv');
