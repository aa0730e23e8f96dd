-- Option keys may be quoted or dotted; values may be numbers or booleans (kept as text). The memory sink
-- declares no options, so CREATE does not check these names (connectors/option_specs.py).
CREATE SINK IF NOT EXISTS console_out
  WITH ('max.rows' = 20, connector = 'memory', Truncate = false, flush.interval = '1s');
