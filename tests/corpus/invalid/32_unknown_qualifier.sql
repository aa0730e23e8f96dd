-- error: BindError 2:8 unknown table or alias 'x'
SELECT x.url FROM clicks AS c;
