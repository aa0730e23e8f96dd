-- The table is written first: the join runs with the stream on the left,
-- and the output keeps the written column order.
SELECT *
FROM campaigns c JOIN events e ON c.ad_id = e.ad_id;
