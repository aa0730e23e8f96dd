-- error: BindError 2:8 unknown column 'v.hour'
SELECT v.hour
FROM (SELECT ad_id FROM events) AS v;
