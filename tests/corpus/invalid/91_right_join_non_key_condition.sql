-- error: BindError 3:49 RIGHT JOIN ... ON supports only equalities between a column of each side
SELECT * FROM clicks c
RIGHT JOIN users u ON c.user_id = u.user_id AND u.age > 3;
