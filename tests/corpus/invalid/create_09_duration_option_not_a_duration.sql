-- error: BindError 3:68 option roll_interval must be a duration
CREATE SINK rolled
  WITH (connector = 'files', path = 'out/rolled/', roll_interval = 'soon');
