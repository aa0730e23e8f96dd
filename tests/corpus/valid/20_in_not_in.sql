SELECT tx_id, merchant
FROM transactions
WHERE merchant IN ('casino_royal', 'crypto_x', 'gift_cards_4u')
  AND account NOT IN ('internal-1', 'internal-2');
