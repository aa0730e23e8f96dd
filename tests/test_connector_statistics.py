"""Statistics come from connectors: each connector's `statistics()` hook, not branches in optimizer/cost.py.

The cost model reads rows per batch, distinct values and a batch's time
span through `stream_dsl.connectors.statistics.source_statistics`; a new
connector gets estimates by defining the hook, and hints (`rows_per_batch`,
`ndv`) win over what any connector says.
"""

from __future__ import annotations

import ast as python_ast
import sys
import types
from pathlib import Path

import polars as pl
import pytest

import stream_dsl as sd
from optimizer import cost
from optimizer.cost import CostModel
from stream_dsl.connectors import CONNECTORS, register_connector
from stream_dsl.connectors.statistics import Statistics, source_statistics
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.plan import Scan
from stream_dsl.ir.types import DataType, Schema

SCHEMA = Schema.of(("k", DataType.STRING), ("ts", DataType.TIMESTAMP))


@pytest.fixture
def fake_connector():
    """A connector module that exists only in this test, with a statistics hook and nothing else."""
    module = types.ModuleType("fake_stats_connector")
    calls: list[int] = []

    def statistics(definition: SourceDef, batch_interval_ms: int) -> Statistics:
        calls.append(batch_interval_ms)
        return Statistics(
            rows_per_batch=batch_interval_ms * 10.0,
            bounded=False,
            ndv=lambda column: 42.0 if column == "k" else None,
            batch_span_ms=lambda column: float(batch_interval_ms),
        )

    module.statistics = statistics  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    register_connector("fake_stats", module.__name__)
    yield calls
    CONNECTORS.pop("fake_stats", None)
    sys.modules.pop(module.__name__, None)


def _source(connector: str, **options: str) -> SourceDef:
    return SourceDef("s", "stream", SCHEMA, (("connector", connector),) + tuple(options.items()))


def test_a_new_connector_gets_estimates_from_its_hook(fake_connector):
    scan = Scan(_source("fake_stats"))
    assert cost.rows_per_batch(scan, CostModel(batch_interval_ms=200)) == 2000
    assert cost.column_ndv(scan, "k") == 42 and cost.column_ndv(scan, "ts") is None
    assert cost.batch_time_span_ms(scan, "ts", CostModel(batch_interval_ms=300)) == 300
    assert 200 in fake_connector and 300 in fake_connector


def test_hints_win_over_the_connector(fake_connector):
    stats = source_statistics(_source("fake_stats", rows_per_batch="7", ndv="k=3"), 100)
    assert stats.rows_per_batch == 7 and stats.ndv("k") == 3 and stats.ndv("ts") is None


def test_a_connector_without_the_hook_or_with_failing_data_is_unknown():
    assert source_statistics(_source("console"), 100) == Statistics()
    assert source_statistics(_source("no_such_connector"), 100) == Statistics()
    missing = SourceDef(
        "f", "table", SCHEMA, (("connector", "files"), ("path", "/nonexistent/x.csv"), ("format", "csv"))
    )
    stats = source_statistics(missing, 100)
    assert stats.rows_per_batch is None and stats.ndv("k") is None


def test_builtin_connectors_report_their_statistics(tmp_path):
    ysb = SourceDef(
        "e",
        "stream",
        Schema.of(("ad_id", DataType.STRING)),
        (("connector", "generator"), ("kind", "ysb"), ("rate", "1000"), ("count", "50")),
    )
    stats = source_statistics(ysb, 1000)
    assert (stats.rows_per_batch, stats.bounded, stats.ndv("ad_id"), stats.batch_span_ms("x")) == (50, True, 1000, 1000)

    ctx = sd.Context(executor="inline", workers=1)
    frames = [pl.DataFrame({"k": ["a", "b", "a"]}), pl.DataFrame({"k": ["c"]})]
    stream = ctx.from_polars(frames, name="m")
    stats = source_statistics(stream.plan.source, 100)
    assert (stats.rows_per_batch, stats.bounded, stats.ndv("k")) == (3, True, 3)

    path = tmp_path / "t.csv"
    path.write_text("k\n" + "".join(f"v{i % 5}\n" for i in range(100)))
    ctx.sql(f"CREATE TABLE t (k STRING) WITH (connector = 'files', path = '{path}', format = 'csv')")
    stats = source_statistics(ctx.table("t").plan.source, 100)
    assert stats.bytes == path.stat().st_size and stats.ndv("k") == 5
    assert stats.rows_per_batch == pytest.approx(101, rel=0.1)


def test_the_cost_model_does_not_branch_on_connector_names():
    tree = python_ast.parse((Path(cost.__file__)).read_text())
    strings = {
        node.value
        for node in python_ast.walk(tree)
        if isinstance(node, python_ast.Constant) and isinstance(node.value, str)
    }
    assert not strings & {"connector", "generator", "memory", "files", "kind"}
