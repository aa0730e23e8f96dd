-- A condition on the right side only is applied to the table before the LEFT JOIN.
SELECT c.url, u.country, u.age
FROM clicks c
LEFT OUTER JOIN users u ON c.user_id = u.user_id AND u.age >= 18;
