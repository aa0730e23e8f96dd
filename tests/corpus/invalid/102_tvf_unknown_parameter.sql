-- error: ParseError 3:55 TUMBLE has no parameter 'SLIDE': it takes DATA, TIMECOL, SIZE
SELECT *
FROM TABLE(TUMBLE(TABLE transactions, DESCRIPTOR(ts), SLIDE => INTERVAL '5' MINUTE));
