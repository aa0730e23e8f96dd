-- Fraud rules applied per transaction: flag and label suspicious payments.
SELECT tx_id,
       account,
       amount,
       CASE
         WHEN amount > 5000 AND merchant LIKE '%casino%' THEN 'gambling_high_value'
         WHEN merchant IN ('crypto_x', 'gift_cards_4u') THEN 'high_risk_merchant'
         WHEN hour(ts) BETWEEN 1 AND 4 THEN 'night_time'
         ELSE 'ok'
       END AS rule
FROM transactions
WHERE amount > 5000
   OR merchant IN ('crypto_x', 'gift_cards_4u')
   OR hour(ts) BETWEEN 1 AND 4;
