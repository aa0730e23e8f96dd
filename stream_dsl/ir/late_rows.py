"""Which sink a query's late rows go to: the `late_rows` option of the streams it reads.

`CREATE STREAM s (...) WITH (..., late_rows = 'late_sink')`: each row a
windowed aggregate over `s` finds late (its window closed before it came) is
written to the sink `late_sink` instead of only being counted — with the
columns it had when it reached the GROUP BY, how late it was
(`lateness_ms`: how much longer a watermark delay would have kept it) and its
batch id, once per batch like any output. The aggregate then runs in one
phase (partial aggregates before the shuffle would fold the rows away).
"""

from __future__ import annotations

from stream_dsl.errors import PlanError
from stream_dsl.ir.plan import Plan, scans

OPTION = "late_rows"
LATENESS_COLUMN = "lateness_ms"
BATCH_COLUMN = "batch_id"
PREFIX = "__sd_late:"  # an input column carried to the aggregate's state stage for routing


def late_rows_sink(plan: Plan) -> str | None:
    """The sink the streams under `plan` route late rows to (None: no stream asks); two different sinks
    for one aggregate are refused."""
    sinks = {name for s in scans(plan) if s.source.kind == "stream" and (name := s.source.option(OPTION))}
    if len(sinks) > 1:
        raise PlanError(f"the streams of one aggregate route late rows to different sinks: {', '.join(sorted(sinks))}")
    return next(iter(sinks), None)
