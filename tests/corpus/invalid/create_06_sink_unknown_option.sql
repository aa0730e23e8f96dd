-- error: BindError 3:52 unknown option 'fromat' (did you mean 'format'?)
CREATE SINK alerts
  WITH (connector = 'files', path = 'out/alerts/', fromat = 'csv');
