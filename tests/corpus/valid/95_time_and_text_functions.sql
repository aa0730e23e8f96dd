-- Date/time, regex and string functions (DuckDB's semantics); EXTRACT is DATE_PART, CURRENT_TIMESTAMP is NOW().
SELECT EXTRACT(dow FROM ts) AS dow, date_trunc('hour', ts) AS hour_start,
       date_diff('minute', ts, current_timestamp) AS age_min,
       regexp_extract(url, '/(\w+)$', 1) AS page, split_part(url, '/', -1) AS last,
       lpad(CAST(duration_ms AS STRING), 6, '0') AS padded
FROM clicks
WHERE regexp_matches(url, '^https?://') AND ts > to_timestamp(1700000000);
