-- error: BindError 3:53 unknown option 'wtach' (did you mean 'watch'?)
CREATE STREAM clicks_watched (user_id STRING, ts TIMESTAMP)
  WITH (connector = 'files', path = 'data/clicks/', wtach = 'true');
