-- A stream RIGHT JOIN a table: matched rows stream out; users no click matched come out at the end of input.
SELECT c.url, u.user_id, u.country
FROM clicks c RIGHT JOIN users u ON c.user_id = u.user_id;
