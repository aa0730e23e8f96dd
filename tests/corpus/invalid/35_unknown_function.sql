-- error: BindError 2:8 unknown function 'uppr' (did you mean 'upper'?)
SELECT uppr(url) FROM clicks;
