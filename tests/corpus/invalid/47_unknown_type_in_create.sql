-- error: BindError 4:9 unknown type 'STRNG'
CREATE STREAM readings (
  id BIGINT,
  label STRNG,
  ts TIMESTAMP
);
