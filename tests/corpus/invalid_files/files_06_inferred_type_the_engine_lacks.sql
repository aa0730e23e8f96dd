-- error: BindError 2:1 'at' (Time) of a type the engine has no counterpart for
CREATE STREAM tagged
  WITH (connector = 'files', path = 'tests/corpus/files/lacking_type.parquet');
