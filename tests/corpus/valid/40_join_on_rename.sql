-- Both sides have user_id: the right one is renamed user_id_right.
SELECT *
FROM clicks c INNER JOIN users u ON c.user_id = u.user_id;
