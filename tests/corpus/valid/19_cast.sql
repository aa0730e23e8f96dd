SELECT CAST(duration_ms AS DOUBLE) AS duration,
       CAST(duration_ms AS VARCHAR) AS duration_text,
       duration_ms::INT AS duration_int,
       CAST('42' AS BIGINT) AS answer,
       CAST(ts AS TIMESTAMP) AS same_ts
FROM clicks;
