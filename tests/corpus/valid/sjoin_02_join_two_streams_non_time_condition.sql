SELECT *
FROM clicks c JOIN transactions t ON c.user_id = t.account AND t.tx_id BETWEEN c.duration_ms AND c.duration_ms;
