-- error: BindError 2:8 urll
SELECT c.urll FROM clicks AS c;
