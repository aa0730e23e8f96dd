"""What a files source's parquet batch needs that is the same every batch is decided once (connectors/files.py
`_pushed_read`, parquet_scan.py `_shape`), and batches still read as before.

A hook counts the decisions whether the declared columns let a file be read
pushed (`pushable`): one per source and query, not one per batch; the
fused path's rows stay plain polars' (test_pread_fused_read.py runs them
on every executor).
"""

from __future__ import annotations

import polars as pl

import stream_dsl.connectors.files as files
from stream_dsl.connectors import parquet_scan
from stream_dsl.ir.types import DataType, Field, Schema
from test_pread_fused_read import NASTY, engine, plain_polars, rows, write


def test_the_pushed_read_is_decided_once_per_source_not_per_batch(tmp_path, monkeypatch):
    write(tmp_path / "in", NASTY * 2)  # 8 files, one per batch
    decided = []
    pushable = files.pushable
    monkeypatch.setattr(files, "pushable", lambda schema: decided.append(schema) or pushable(schema))
    shapes = []
    shape = parquet_scan._shape
    monkeypatch.setattr(parquet_scan, "_shape", lambda schema: shapes.append(id(schema)) or shape(schema))
    got = engine(tmp_path / "in", "x > 0")
    assert len(decided) == 1, len(decided)  # one source, one decision
    assert len(shapes) == 8 and len(set(shapes)) == 1  # one schema object every batch: its shape is kept
    assert rows(got) == rows(plain_polars(tmp_path / "in", "x > 0"))


def test_each_schema_object_gets_its_own_shape():
    """`_shape` keys by identity and keeps the schema alive, so an id is never another schema's."""
    one = Schema((Field("x", DataType.BIGINT),))
    two = Schema((Field("x", DataType.STRING),))
    assert parquet_scan._shape(one)[0] == {"x": pl.Int64}
    assert parquet_scan._shape(two)[0] == {"x": pl.String}
    assert parquet_scan._shape(one)[0] == {"x": pl.Int64}
