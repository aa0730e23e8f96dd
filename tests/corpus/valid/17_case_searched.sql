SELECT tx_id,
       CASE
         WHEN amount >= 10000 THEN 'high'
         WHEN amount >= 1000 THEN 'medium'
         ELSE 'low'
       END AS risk_band
FROM transactions;
