SELECT url, user_id FROM clicks;
