-- error: BindError 3:21 unknown connector 'fiels' (did you mean 'files'?)
CREATE TABLE products (sku STRING, price DOUBLE)
  WITH (connector = 'fiels', path = 'data/products.csv');
