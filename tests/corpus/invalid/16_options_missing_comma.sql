-- error: ParseError 2:46 path
CREATE SINK alerts WITH (connector = 'files' path = 'out/alerts/');
