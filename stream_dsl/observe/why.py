"""Why a query prints nothing (or little): the batches' facts, turned into answers.

Every batch's progress carries what it did to rows (`executor/query/
diagnostics.py`): rows into and out of each operator on sampled batches, how
late the late rows were, the open windows. `WhyTotals` adds them up over a
query's life (a QueryHandle keeps one); `explain` reads them with the stage
plan and says, in words:

- where rows went, per operator, in the last batches and in total: dropped
  by WHERE, unmatched in a join, held in open windows, dropped as late, and
  the dead letters by reason;
- when the next output is due ("window [10:00:00, 10:00:10) closes when the
  watermark passes 10:00:10; the watermark is 10:00:03 because the newest
  event time seen is 10:00:04 and the delay is 1s");
- when there is output, which operator lost the most rows;
- from the late rows' lateness, the watermark delay that would have kept 99%
  and 99.9% of them, and what each costs in output latency.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import networkx as nx

from executor.query.diagnostics import LATENESS_BOUNDS_MS, add_counts, bucket_label, duration_text, quantile_bound
from optimizer.physical.lower import stage_order
from optimizer.physical.stages import (
    AggregateOp,
    BroadcastJoinOp,
    FilterOp,
    PartialAggregateOp,
    ProjectOp,
    ReadOp,
    ScanOp,
    Stage,
)
from stream_dsl.ir.plan import scans
from stream_dsl.ir.plan_text import render

RECENT = 10  # "the last batches"


@dataclass
class WhyTotals:
    """The diagnostics of every batch so far, added up (a handle keeps progress dicts for a while only)."""

    batches: int = 0
    sampled: int = 0
    operators: dict[str, list[int]] = field(default_factory=dict)
    lateness: list[int] = field(default_factory=list)
    open_windows: dict[str, dict[str, Any]] = field(default_factory=dict)  # per stage, as last reported
    newest_watermark: Any = None

    def add(self, report: dict[str, Any]) -> None:
        self.batches += 1
        if report.get("operators_sampled"):
            self.sampled += 1
            self.open_windows.update(report.get("open_windows") or {})  # stages whose tasks ran
        for key, (rows_in, rows_out) in (report.get("operators") or {}).items():
            had = self.operators.get(key, [0, 0])
            self.operators[key] = [had[0] + rows_in, had[1] + rows_out]
        for counts in (report.get("lateness") or {}).values():
            self.lateness = add_counts(self.lateness, counts)
        if report.get("watermark") is not None:
            self.newest_watermark = report["watermark"]


def totals_of(reports: Iterable[dict[str, Any]]) -> WhyTotals:
    totals = WhyTotals()
    for report in reports:
        totals.add(report)
    return totals


# ---------------------------------------------------------------- naming operators


def _table_name(op: BroadcastJoinOp) -> str:
    names = [s.source.name for s in scans(op.table)]
    return names[0] if len(names) == 1 else op.table_id


def operator_label(op: Any) -> str | None:
    """How `why` names an operator (None: one that never changes the row count, not shown)."""
    if isinstance(op, ScanOp):
        where = f" WHERE {render(op.predicate)}" if op.predicate is not None else ""
        return f"read {op.source.name}{where}"
    if isinstance(op, FilterOp):
        return f"WHERE {render(op.predicate)}"
    if isinstance(op, BroadcastJoinOp):
        on = ", ".join(f"{s} = {t}" for s, t in zip(op.stream_keys, op.table_keys))
        return f"{op.kind.upper()} JOIN {_table_name(op)} ON {on}"
    if isinstance(op, PartialAggregateOp):
        return "GROUP BY (per task, before the shuffle)"
    if isinstance(op, AggregateOp):
        return f"GROUP BY {', '.join(list(op.keys) + ([str(op.window)] if op.window is not None else []))}"
    if isinstance(op, (ProjectOp, ReadOp)):
        return None
    return op.describe().split(" ")[0]


@dataclass(frozen=True)
class OperatorRows:
    key: str
    label: str
    stateful: bool
    drops: bool  # a filter, a scan's pushed-down predicate, an inner join: rows it removes are lost
    rows_in: int
    rows_out: int

    @property
    def lost(self) -> int:
        return max(0, self.rows_in - self.rows_out) if self.drops else 0


def _positions(stage: Stage) -> list[tuple[int, Any, bool]]:
    """(position, operator, stateful) in the numbering of `diagnostics.operator_key`."""
    out: list[tuple[int, Any, bool]] = [(i, op, False) for i, op in enumerate(stage.operators)]
    if stage.stateful is not None:
        out.append((len(stage.operators), stage.stateful, True))
        out += [(len(stage.operators) + 1 + i, op, False) for i, op in enumerate(stage.post)]
    return out


def _drops(op: Any) -> bool:
    if isinstance(op, ScanOp):
        return op.predicate is not None
    if isinstance(op, BroadcastJoinOp):
        return op.kind in ("inner", "semi", "anti")
    return isinstance(op, FilterOp)


def operator_rows(graph: nx.DiGraph, counts: dict[str, list[int]]) -> list[OperatorRows]:
    rows = []
    for stage in stage_order(graph):
        for position, op, stateful in _positions(stage):
            label = operator_label(op)
            key = f"{stage.id}.{position}"
            if label is None or key not in counts:
                continue
            rows_in, rows_out = counts[key]
            rows.append(OperatorRows(key, label, stateful, _drops(op), rows_in, rows_out))
    return rows


# ---------------------------------------------------------------- the answer


def _time(value: Any) -> str:
    """An event time as people read it: to the millisecond, without a zero fraction."""
    if value is None:
        return "none yet"
    if isinstance(value, int):
        value = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=value)
    text = value.isoformat(sep=" ")
    return text[:-7] if text.endswith(".000000") else (text[:-3] if "." in text else text)


def watermark_delays(graph: nx.DiGraph) -> dict[str, int]:
    """Each watermarked source's delay in ms, by source name (what "the delay is 1s" names)."""
    delays = {}
    for stage in stage_order(graph):
        head = stage.operators[0]
        if isinstance(head, ScanOp) and head.source.watermark is not None:
            delays[head.source.name] = head.source.watermark.delay_ms
    return delays


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.0f}%" if whole else "-"


def _table(rows: list[OperatorRows], recent: dict[str, list[int]]) -> list[str]:
    width = max((len(r.label) for r in rows), default=10)
    lines = [f"  {'operator':<{width}}  {'last batches':>22}  {'in total':>22}"]
    for r in rows:
        last_in, last_out = recent.get(r.key, [0, 0])
        note = ""
        if r.stateful:
            note = "  (rows in -> rows emitted)"
        elif r.lost:
            note = f"  dropped {r.lost} ({_percent(r.lost, r.rows_in)})"
        lines.append(f"  {r.label:<{width}}  {last_in:>10} -> {last_out:<9}  {r.rows_in:>10} -> {r.rows_out:<9}{note}")
    return lines


def suggested_delay_ms(lateness: Sequence[int], delay_ms: int, keep: float) -> int | None:
    """The delay that would have kept `keep` of the late rows: today's plus the lateness quantile's bucket
    bound (a bound at or above the exact quantile, so at least `keep` of them are kept)."""
    extra = quantile_bound(list(lateness), keep)
    return None if extra is None else delay_ms + extra


def suggest_delay(lateness: Sequence[int], delay_ms: int | None) -> list[str]:
    """The delays that would have kept 99% and 99.9% of the late rows, and their cost in latency."""
    late = sum(lateness)
    if not late:
        return []
    lines = [
        "Late rows by how much longer a delay would have kept them: "
        + ", ".join(f"{bucket_label(i)}: {n}" for i, n in enumerate(lateness) if n)
    ]
    now = delay_ms or 0
    shown: set[int | None] = set()
    for q in (0.99, 0.999):
        extra = quantile_bound(list(lateness), q)
        if extra in shown:  # 99.9% needs no more than 99%: said once, for the stronger claim
            lines[-1] = lines[-1].replace(f"kept {0.99:.1%} of", f"kept {q:.1%} of")
            continue
        shown.add(extra)
        if extra is None:
            lines.append(f"  no delay up to {duration_text(LATENESS_BOUNDS_MS[-1])} keeps {q:.1%} of them")
            continue
        lines.append(
            f"  a watermark delay of {duration_text(now + extra)} (now {duration_text(now)}) would have kept "
            f"{q:.1%} of the {late} late rows; windows would close {duration_text(extra)} later "
            "(that much more output latency)"
        )
    return lines


def _dead_letter_lines(dead_letters: Sequence[Any], total: int) -> list[str]:
    if not total:
        return []
    reasons = Counter(str(getattr(d, "reason", "unknown")) for d in dead_letters)
    shown = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(5))
    kept = f" (the newest {len(dead_letters)}: {shown})" if reasons else ""
    return [f"Dead letters: {total} records could not be read{kept}"]


def _next_output(totals: WhyTotals, graph: nx.DiGraph, finished: bool) -> list[str]:
    if finished:
        return []
    delays = watermark_delays(graph)
    for stage_name, window in totals.open_windows.items():
        end, start, count = window.get("earliest_end_ms"), window.get("earliest_start_ms"), window.get("count")
        if end is None:
            continue
        wm = totals.newest_watermark
        line = (
            f"Next output: window [{_time(start)}, {_time(end)}) ({stage_name}, {count} windows open) closes when "
            f"the watermark passes {_time(end)}"
        )
        if wm is None:
            return [line + "; there is no watermark yet (no event time seen)"]
        if len(delays) == 1:
            (source, delay), newest = next(iter(delays.items())), None
            if isinstance(wm, dt.datetime):
                newest = wm + dt.timedelta(milliseconds=delay)
            return [
                line + f"; the watermark is {_time(wm)} because the newest event time seen in {source} is "
                f"{_time(newest)} and the delay is {duration_text(delay)}"
            ]
        return [line + f"; the watermark is {_time(wm)}"]
    return []


def explain(
    graph: nx.DiGraph,
    reports: Sequence[dict[str, Any]],
    totals: WhyTotals,
    *,
    name: str = "the query",
    status: str = "running",
    totals_rows: dict[str, int] | None = None,
    dead_letters: Sequence[Any] = (),
) -> str:
    """The answer to "why no output?" for a query, as text (module doc)."""
    counts = dict(totals_rows or {})
    rows_in, rows_out = counts.get("rows_in", 0), counts.get("rows_out", 0)
    late, dead = counts.get("late_rows", 0), counts.get("dead_letters", 0)
    finished = status == "finished"  # its input ended: every window was flushed
    lines = [f"{name}: {status}, {totals.batches} batches, {rows_in} rows read, {rows_out} rows out"]
    recent_reports = [r for r in reports[-RECENT:] if r.get("operators_sampled")]
    recent = totals_of(recent_reports).operators
    table = operator_rows(graph, totals.operators)
    if table:
        lines.append(
            f"Where rows went (counted on {totals.sampled} of {totals.batches} batches; last batches: the newest "
            f"{len(recent_reports)} counted):"
        )
        lines += _table(table, recent)
    elif totals.batches:
        lines.append("No batch was counted per operator yet (SET diagnose_every = 1 counts every batch).")
    lines += _verdict(table, rows_in, rows_out, late, dead, totals, finished)
    if late:
        lines.append(f"Late rows: {late} arrived after the watermark passed their window and were dropped.")
    lines += _dead_letter_lines(dead_letters, dead)
    lines += _next_output(totals, graph, finished)
    delays = watermark_delays(graph)
    lines += suggest_delay(totals.lateness, max(delays.values()) if delays else None)
    return "\n".join(lines)


def _verdict(
    table: list[OperatorRows], rows_in: int, rows_out: int, late: int, dead: int, totals: WhyTotals, finished: bool
) -> list[str]:
    """One sentence first: the cause, or where most rows were lost."""
    worst = max(table, key=lambda r: r.lost, default=None)
    if rows_out:
        if worst is not None and worst.lost:
            share = _percent(worst.lost, worst.rows_in)
            return [f"Most rows lost: {worst.label} dropped {worst.lost} of {worst.rows_in} ({share})."]
        return []
    if not rows_in and not dead:
        return [
            "No output because no rows arrived: the sources delivered nothing yet (check their path, topic or key)."
        ]
    if not rows_in and dead:
        return [
            f"No output because every record was a dead letter ({dead}): none could be read as the declared columns."
        ]
    for r in table:
        if r.drops and r.rows_in and not r.rows_out:
            what = "found no match" if "JOIN" in r.label else "was filtered out"
            return [f"No output because every row {what} at {r.label} ({r.rows_in} of {r.rows_in} counted)."]
    if late and late >= rows_in:
        return ["No output because every row was late: the watermark had passed their windows."]
    if any(w.get("earliest_end_ms") is not None for w in totals.open_windows.values()) and not finished:
        return [
            "No output yet because rows are held in open windows: a window emits when the watermark passes its end."
        ]
    return ["No output yet; the operators above show where the rows are."]
