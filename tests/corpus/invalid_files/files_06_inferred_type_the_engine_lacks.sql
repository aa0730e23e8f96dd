-- error: BindError 2:1 'place' (Struct({'city': String, 'zip': String})) of a type the engine has no counterpart for
CREATE STREAM tagged
  WITH (connector = 'files', path = 'tests/corpus/files/nested.parquet');
