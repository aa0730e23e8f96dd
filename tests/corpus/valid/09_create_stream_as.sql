-- CREATE STREAM ... AS names a continuous query, like a view.
CREATE STREAM hot_sensors AS
  SELECT sensor_id, temperature, ts FROM sensors WHERE temperature > 30.0;
