SELECT user_id, url FROM clicks WHERE url <> '' QUALIFY ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts) = 1
