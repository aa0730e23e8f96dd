-- A table LEFT JOIN a stream is the stream RIGHT JOIN the table, in the written column order.
SELECT *
FROM users u LEFT JOIN clicks c USING (user_id);
