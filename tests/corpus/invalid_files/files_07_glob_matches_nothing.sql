-- error: BindError 3:37 no files match path 'tests/corpus/files/*.jsonl'
CREATE TABLE events (user_id STRING)
  WITH (connector = 'files', path = 'tests/corpus/files/*.jsonl');
