SELECT c.url, e.user_id, e.ad_id
FROM clicks c RIGHT JOIN events e ON c.user_id = e.user_id;
