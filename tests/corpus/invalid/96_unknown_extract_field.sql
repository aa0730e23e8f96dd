-- error: BindError 2:8 DATE_PART: unknown EXTRACT field 'fortnight'
SELECT EXTRACT(fortnight FROM ts) FROM clicks;
