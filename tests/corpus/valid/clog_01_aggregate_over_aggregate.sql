SELECT clicks, COUNT(*) AS users, MAX(user_id) AS last_user FROM (SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id) GROUP BY clicks
