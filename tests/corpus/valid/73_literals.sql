SELECT tx_id,
       NULL AS nothing,
       TRUE AS yes,
       FALSE AS no,
       'O''Reilly' AS quoted,
       1.5e3 AS sci,
       .25 AS quarter,
       coalesce(merchant, 'unknown') AS merchant_or_unknown
FROM transactions;
