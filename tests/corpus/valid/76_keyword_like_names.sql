-- Non-reserved keywords are plain names; reserved ones can be quoted.
SELECT url AS "window", ts AS "timestamp", duration_ms AS second, user_id AS "from"
FROM clicks;
