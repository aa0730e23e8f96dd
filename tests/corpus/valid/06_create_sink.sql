CREATE SINK alerts WITH (connector = 'files', path = 'out/alerts/', format = 'ndjson');
