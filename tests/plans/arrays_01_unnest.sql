SELECT tx_id, tag, i FROM transactions CROSS JOIN UNNEST(split(merchant, ',')) WITH ORDINALITY AS t(tag, i)
WHERE amount > 10 AND tag <> ''
