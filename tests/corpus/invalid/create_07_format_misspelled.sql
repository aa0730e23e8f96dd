-- error: BindError 3:62 got 'parqet' (did you mean 'parquet'?)
CREATE STREAM clicks_pq (user_id STRING, ts TIMESTAMP)
  WITH (connector = 'files', path = 'data/clicks/', format = 'parqet');
