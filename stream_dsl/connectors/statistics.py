"""What a connector knows about a source's data at plan time, for the optimizer's cost model.

A connector module may expose `statistics(definition, batch_interval_ms) ->
Statistics`; `source_statistics` calls it through the registry, so the cost
model (optimizer/cost.py) never branches on connector names. Everything is
best effort: a connector without the hook, or data that cannot be read at
plan time (a missing path, a bad file), is simply unknown (None). Two
source options work for every connector and win over what it says:
`rows_per_batch = 'N'` and `ndv = 'col=N, col2=M'` (a malformed `ndv` is an
error, the only one statistics raise).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef

ColumnStatistic = Callable[[str], "float | None"]


def _unknown(column: str) -> float | None:
    return None


@dataclass(frozen=True)
class Statistics:
    """A source's statistics; None is unknown.

    `rows_per_batch`: rows one micro-batch holds (a table: all its rows);
    `rows_total`: the rows a bounded source holds in all;
    `bytes`: the size of the data at rest, if it has one; `bounded`: the
    source ends by itself; `ndv(column)`: distinct values of a column over
    the data (computed on demand: it may read a small table);
    `batch_span_ms(column)`: the event time one batch spans in that column.
    """

    rows_per_batch: float | None = None
    rows_total: float | None = None  # all the rows a bounded source holds
    bytes: int | None = None
    bounded: bool | None = None
    ndv: ColumnStatistic = field(default=_unknown, compare=False)
    batch_span_ms: ColumnStatistic = field(default=_unknown, compare=False)


UNKNOWN = Statistics()


def source_statistics(source: SourceDef, batch_interval_ms: int) -> Statistics:
    """The statistics of `source`: its connector's (best effort), then the `rows_per_batch` and `ndv` hints."""
    stats = _connector_statistics(source, batch_interval_ms)
    hints = ndv_hints(source)
    rows = int_option(source, "rows_per_batch")
    if rows is not None:
        stats = replace(stats, rows_per_batch=float(rows))
    if hints:
        own = stats.ndv
        stats = replace(stats, ndv=lambda column: float(hints[column]) if column in hints else own(column))
    return stats


def _connector_statistics(source: SourceDef, batch_interval_ms: int) -> Statistics:
    from stream_dsl.connectors import CONNECTORS, connector_module

    name = (source.option("connector") or "").lower()
    if name not in CONNECTORS:
        return UNKNOWN
    try:
        hook = getattr(connector_module(name, f"source '{source.name}'"), "statistics", None)
        stats = UNKNOWN if hook is None else hook(source, batch_interval_ms)
    except Exception:  # statistics are best effort: what cannot be read is unknown
        return UNKNOWN
    return replace(stats, ndv=_best_effort(stats.ndv), batch_span_ms=_best_effort(stats.batch_span_ms))


def _best_effort(statistic: ColumnStatistic) -> ColumnStatistic:
    def safe(column: str) -> float | None:
        try:
            return statistic(column)
        except Exception:  # as above: unreadable data is unknown
            return None

    return safe


def ndv_hints(source: SourceDef) -> dict[str, int]:
    """The source option `ndv = 'col=N, col2=M'` as a dict; a malformed hint is a clear error."""
    text = source.option("ndv")
    if not text:
        return {}
    hints: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip().replace("_", "")
        if not sep or not value.isdigit() or name not in source.schema:
            raise ConnectorError(
                f"source '{source.name}': option ndv must look like 'column=N, column2=M' "
                f"with columns of the source, got '{text}'"
            )
        hints[name] = int(value)
    return hints


def int_option(source: SourceDef, key: str) -> int | None:
    """An integer option (`1_000` allowed), or None when absent or not a number."""
    value = source.option(key)
    if value is None:
        return None
    try:
        return int(value.strip().replace("_", ""))
    except ValueError:
        return None
