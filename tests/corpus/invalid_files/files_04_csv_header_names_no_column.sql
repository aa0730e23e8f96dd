-- error: BindError 3:37 its header (user_id, n, ts) names none of the declared columns (account, amount)
CREATE STREAM events (account STRING, amount DOUBLE)
  WITH (connector = 'files', path = 'tests/corpus/files/events.csv');
