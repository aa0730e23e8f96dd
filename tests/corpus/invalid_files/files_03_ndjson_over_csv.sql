-- error: BindError 3:79 cannot be read as ndjson: its first line is not a JSON object
CREATE TABLE events (user_id STRING, n BIGINT, ts TIMESTAMP)
  WITH (connector = 'files', path = 'tests/corpus/files/events.csv', format = 'ndjson');
