-- Every type spelling maps to one of the six SQL types; the watermark has no delay.
CREATE STREAM IF NOT EXISTS readings (
  id BIGINT NOT NULL,
  device INTEGER,
  small_value SMALLINT,
  reading FLOAT,
  precise DOUBLE PRECISION,
  label VARCHAR(32),
  note TEXT,
  valid BOOL,
  taken_at TIMESTAMP,
  WATERMARK FOR taken_at AS taken_at
) WITH (connector = 'files', path = 'data/readings/', format = 'csv');
