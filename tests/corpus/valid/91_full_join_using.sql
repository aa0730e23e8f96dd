-- FULL OUTER JOIN ... USING: the key is COALESCE(left key, right key), as in SQL.
SELECT *
FROM clicks FULL OUTER JOIN users USING (user_id);
