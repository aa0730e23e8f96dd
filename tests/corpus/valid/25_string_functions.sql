SELECT upper(user_id) AS uid,
       lower(url),
       length(url) AS url_length,
       trim(url) AS trimmed,
       substring(url, 1, 8) AS scheme,
       replace(url, 'http://', 'https://') AS secure,
       concat(user_id, ':', duration_ms) AS tag,
       user_id || '@' || url AS joined
FROM clicks;
