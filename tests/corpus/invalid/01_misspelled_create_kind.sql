-- error: ParseError 2:8 STREEM
CREATE STREEM readings (id BIGINT, ts TIMESTAMP);
