-- Double quotes and backquotes keep names as written, spaces and keywords included.
SELECT "user_id" AS "User Id", `url` AS "select", c."duration_ms"
FROM "clicks" AS c
WHERE "c".ts IS NOT NULL;
