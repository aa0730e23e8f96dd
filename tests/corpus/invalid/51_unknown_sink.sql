-- error: BindError 2:13 unknown sink 'outt' (did you mean 'out'?)
INSERT INTO outt
SELECT url FROM clicks;
