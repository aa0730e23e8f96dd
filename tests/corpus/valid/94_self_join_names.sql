-- A self join: the second side's columns are named by its alias (b.user_id, b.country, b.age).
SELECT *
FROM users a JOIN users b ON a.user_id = b.user_id;
