select Url, count(*) As Hits, Max(Duration_MS) max_ms
FrOm CLICKS
wHeRe duration_ms > 100 AND url Like '%.html'
Group By url
HAVING count(*) >= 2;
