-- error: BindError 2:1 only the files connector takes its columns from its files
CREATE STREAM more_events
  WITH (connector = 'generator', kind = 'ysb');
