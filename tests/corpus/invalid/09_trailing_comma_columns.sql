-- error: ParseError 5:1 ')'
CREATE STREAM readings (
  id BIGINT,
  ts TIMESTAMP,
);
