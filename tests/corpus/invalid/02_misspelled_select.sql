-- error: ParseError 2:1 SELET
SELET url FROM clicks;
