-- error: BindError 3:61 option watch must be 'true' or 'false', got 'maybe'
CREATE STREAM clicks_watched (user_id STRING, ts TIMESTAMP)
  WITH (connector = 'files', path = 'data/clicks/', watch = 'maybe');
