-- Statistics, percentiles and lists over TUMBLE: all split into a partial and a final aggregate.
SELECT user_id, window_start, window_end,
       STDDEV(duration_ms) AS sd, VAR_POP(duration_ms) AS vp, MEDIAN(duration_ms) AS med,
       APPROX_PERCENTILE(duration_ms, 0.9) AS p90, APPROX_COUNT_DISTINCT(url) AS pages,
       FIRST_VALUE(url) AS entry, LAST(url) AS exit_page, ARRAY_AGG(duration_ms) AS durations,
       STRING_AGG(url, ' > ') AS path, LISTAGG(url) AS plain
FROM clicks
GROUP BY user_id, TUMBLE(ts, INTERVAL '1' MINUTE);
