/* Average transaction amount per merchant,
   written over many lines with comments everywhere. */
SELECT
  merchant,            -- the key
  AVG(amount)          /* the mean */ AS avg_amount,
  COUNT(*) AS n        -- how many
FROM
  transactions
  -- only positive amounts
WHERE amount
  > 0
GROUP BY
  merchant;
