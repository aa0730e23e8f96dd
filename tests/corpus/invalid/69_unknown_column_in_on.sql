-- error: BindError 3:43 unknown column 'u.userid' (did you mean 'user_id'?)
SELECT *
FROM clicks c JOIN users u ON c.user_id = u.userid;
