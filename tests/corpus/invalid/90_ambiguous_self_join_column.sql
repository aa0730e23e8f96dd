-- error: BindError 2:8 column 'country' is ambiguous: it is in a and b; write a.country or b.country
SELECT country FROM users a JOIN users b USING (user_id);
