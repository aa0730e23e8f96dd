-- error: BindError 5:17 tss
CREATE STREAM readings (
  id BIGINT,
  ts TIMESTAMP,
  WATERMARK FOR tss AS tss - INTERVAL '1' SECOND
);
