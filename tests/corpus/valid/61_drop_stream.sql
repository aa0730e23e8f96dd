DROP STREAM clicks;
