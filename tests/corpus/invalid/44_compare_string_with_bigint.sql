-- error: BindError 4:7 cannot compare STRING with BIGINT
SELECT url
FROM clicks
WHERE user_id = 42;
