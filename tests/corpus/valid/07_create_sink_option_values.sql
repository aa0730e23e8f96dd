-- Option keys may be quoted or dotted; values may be numbers or booleans (kept as text).
CREATE SINK IF NOT EXISTS console_out
  WITH ('max.rows' = 20, connector = 'console', Truncate = false, flush.interval = '1s');
