-- Both sides have user_id: inside the plan the right one is user_id_right; the output names it u.user_id.
SELECT *
FROM clicks c INNER JOIN users u ON c.user_id = u.user_id;
