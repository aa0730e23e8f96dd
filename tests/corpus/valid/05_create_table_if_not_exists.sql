-- The table exists already: IF NOT EXISTS makes this a no-op when applied.
CREATE TABLE IF NOT EXISTS users (user_id STRING, country STRING, age INT)
  WITH (connector = 'files', path = 'data/users.csv', format = 'csv');
