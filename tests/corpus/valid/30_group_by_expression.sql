-- The GROUP BY expression is matched in the select list.
SELECT upper(url), COUNT(*)
FROM clicks
GROUP BY upper(url);
