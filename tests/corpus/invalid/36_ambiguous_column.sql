-- error: BindError 2:13 column 'user_id' is ambiguous
SELECT url, user_id
FROM clicks c JOIN users u ON c.user_id = u.user_id;
