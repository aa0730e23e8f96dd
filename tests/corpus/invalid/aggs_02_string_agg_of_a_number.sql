-- error: BindError 2:8 STRING_AGG needs a string, got BIGINT
SELECT STRING_AGG(duration_ms, ',') AS s FROM clicks;
