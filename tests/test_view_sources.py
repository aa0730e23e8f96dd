"""A view reads the stream or table it was made over as it is defined now (catalog.py).

Tried as a new user: after `CREATE OR REPLACE STREAM s ...` with another
path, `SELECT * FROM v` (a view over s) still read the old files, and
`DROP STREAM s` succeeded while v still read it. Now a replacement with the
same columns carries the view along, one that changes them and a DROP are
refused while a view reads the stream, naming the view.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import stream_dsl as sd
from stream_dsl.errors import CatalogError


def _context(tmp_path: Path) -> sd.Context:
    for name, ids in (("a", [1, 2]), ("b", [10])):
        (tmp_path / f"{name}.ndjson").write_text("".join(f'{{"id": {i}}}\n' for i in ids))
    ctx = sd.Context()
    ctx.sql(f"CREATE STREAM s (id BIGINT) WITH (connector = 'files', path = '{tmp_path}/a.ndjson')")
    ctx.sql("CREATE VIEW v AS SELECT id FROM s WHERE id > 0")
    ctx.sql("CREATE VIEW w AS SELECT COUNT(*) AS n FROM v")
    return ctx


def test_a_view_reads_the_stream_that_replaced_its_own(tmp_path):
    ctx = _context(tmp_path)
    assert sorted(ctx.sql("SELECT id FROM v").collect()["id"]) == [1, 2]
    ctx.sql(f"CREATE OR REPLACE STREAM s (id BIGINT) WITH (connector = 'files', path = '{tmp_path}/b.ndjson')")
    assert ctx.sql("SELECT id FROM v").collect()["id"].to_list() == [10]
    assert ctx.sql("SELECT n FROM w").collect()["n"].to_list() == [1]  # a view over the view too
    assert ctx.sql("SELECT id FROM v").collect().equals(ctx.sql("SELECT id FROM s WHERE id > 0").collect())


def test_replacing_a_stream_with_other_columns_under_a_view_is_refused_and_changes_nothing(tmp_path):
    ctx = _context(tmp_path)
    with pytest.raises(CatalogError, match="view 'v' reads stream 's', whose columns this would change; DROP VIEW v"):
        ctx.sql(f"CREATE OR REPLACE STREAM s (id STRING) WITH (connector = 'files', path = '{tmp_path}/b.ndjson')")
    assert sorted(ctx.sql("SELECT id FROM s").collect()["id"]) == [1, 2]
    assert sorted(ctx.sql("SELECT id FROM v").collect()["id"]) == [1, 2]


def test_a_stream_a_view_reads_is_dropped_only_after_the_view(tmp_path):
    ctx = _context(tmp_path)
    with pytest.raises(CatalogError, match="view '[vw]' reads stream 's'; DROP VIEW [vw] first"):
        ctx.sql("DROP STREAM s")
    assert sorted(ctx.sql("SELECT id FROM v").collect()["id"]) == [1, 2]
    ctx.sql("DROP VIEW w")
    ctx.sql("DROP VIEW v")
    ctx.sql("DROP STREAM s")
    assert "s" not in ctx.catalog.relation_names()
