-- error: BindError 2:24 EMIT
SELECT url FROM clicks EMIT CHANGES;
