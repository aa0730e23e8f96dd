-- error: BindError 2:33 UNNEST joins as CROSS JOIN UNNEST(...)
SELECT x FROM transactions JOIN UNNEST(split(merchant, ',')) AS t(x) ON x = merchant;
