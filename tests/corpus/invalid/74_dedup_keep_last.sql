-- error: BindError 4:58 deduplication keeps the first row per key: ORDER BY an event-time (TIMESTAMP) column ASC
SELECT user_id, url
FROM clicks
QUALIFY ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts DESC) = 1;
