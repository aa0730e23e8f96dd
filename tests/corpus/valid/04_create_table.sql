CREATE TABLE merchants (merchant STRING, category STRING, risk_score DOUBLE)
  WITH (connector = 'files', path = 'data/merchants.csv', format = 'csv');
