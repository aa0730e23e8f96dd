SELECT user_id, url
FROM clicks
WHERE url LIKE 'https://shop.example.com/%'
  AND url NOT LIKE '%/checkout_';
