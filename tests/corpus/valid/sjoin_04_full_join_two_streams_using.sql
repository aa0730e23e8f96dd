SELECT user_id, c.url, e.ad_id
FROM clicks c FULL OUTER JOIN events e USING (user_id);
