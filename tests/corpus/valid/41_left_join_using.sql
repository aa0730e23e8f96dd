SELECT c.user_id, c.url, u.country
FROM clicks AS c
LEFT JOIN users AS u USING (user_id);
