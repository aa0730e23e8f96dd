-- error: BindError 3:61 unknown option 'delimter' (did you mean 'delimiter'
CREATE STREAM clicks_csv (user_id STRING, ts TIMESTAMP)
  WITH ('connector' = 'files', 'path' = 'data/clicks.csv', 'delimter' = ';');
