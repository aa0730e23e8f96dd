"""Run one query on our engine and on DuckDB over the same data, and compare the answers.

A case is a query (ours and DuckDB's spelling, usually the same text), the
stream `s` cut into micro-batches, the static table `t`, and whether `s`
has a watermark (delay 0, rows in event-time order). Our engine runs it in
every `Setting` (optimizer on and off, worker counts); each answer must
equal DuckDB's. A failure on our side must be a `DSLError`: anything else
(a polars or Python exception) is a difference whatever DuckDB says.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal

import duckdb
import polars as pl

import stream_dsl as sd
from .reference import duckdb_connection, duckdb_table
from executor.api import collect
from stream_dsl.config import RunConfig
from stream_dsl.errors import DSLError

DUCK_TYPES = {
    pl.String: "VARCHAR",
    pl.Int64: "BIGINT",
    pl.Int32: "INTEGER",
    pl.Float64: "DOUBLE",
    pl.Boolean: "BOOLEAN",
    pl.Datetime("ms"): "TIMESTAMP",
}


@dataclass(frozen=True)
class Setting:
    """How our engine runs a case."""

    workers: int = 1
    optimize: bool = True
    disabled_rules: tuple[str, ...] = ()  # optimizer rules switched off (only `known.py` switches any)

    def __str__(self) -> str:
        off = f" without {', '.join(self.disabled_rules)}" if self.disabled_rules else ""
        return f"workers={self.workers} optimize={self.optimize}{off}"


SETTINGS = (Setting(1, True), Setting(1, False), Setting(3, True))


@dataclass
class Case:
    """A query over `s` (cut after the rows in `cuts`) and `t`; `duck` is DuckDB's spelling when it differs."""

    sql: str
    s: pl.DataFrame
    t: pl.DataFrame
    cuts: tuple[int, ...] = ()
    watermark: bool = False
    duck: str | None = None
    ordered: bool = False  # compare row order too (ORDER BY over whole-row-distinct keys)
    settings: tuple[Setting, ...] = field(default=SETTINGS)

    def batches(self) -> list[pl.DataFrame]:
        bounds = [0, *sorted(c for c in self.cuts if 0 < c < self.s.height), self.s.height]
        return [self.s.slice(a, b - a) for a, b in zip(bounds, bounds[1:])] or [self.s]

    def render(self) -> str:
        lines = [f"-- {self.sql}"]
        if self.duck and self.duck != self.sql:
            lines.append(f"-- duckdb: {self.duck}")
        lines.append(f"-- s (cuts {list(self.cuts)}, watermark {self.watermark}): {self.s.rows()}")
        lines.append(f"-- t: {self.t.rows()}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Answer:
    """Rows, or an error (its class name and message); `foreign` marks an error that is not a DSLError."""

    rows: tuple[tuple, ...] | None = None
    error: str | None = None
    foreign: bool = False

    def __str__(self) -> str:
        return f"error {self.error}" if self.error is not None else f"rows {list(self.rows or ())}"


def duckdb_answer(case: Case) -> Answer:
    con = duckdb_connection()
    try:
        con.execute("SET error_on_division_by_zero = false")
    except duckdb.Error:
        pass
    for name, frame in (("s", case.s), ("t", case.t)):
        columns = ", ".join(f"{c} {DUCK_TYPES[frame.schema[c]]}" for c in frame.columns)
        duckdb_table(con, name, columns, frame.rows())
    try:
        return Answer(rows=tuple(con.execute(case.duck or case.sql).fetchall()))
    except duckdb.Error as exc:
        return Answer(error=f"{type(exc).__name__}: {exc}")
    finally:
        con.close()


def our_answer(case: Case, setting: Setting) -> Answer:
    ctx = sd.Context(executor="inline", workers=setting.workers)
    options = {"watermark": "ts", "watermark_delay": "0s"} if case.watermark else {}
    ctx.from_polars(case.batches(), name="s", **options)
    ctx.from_polars(case.t, name="t", static=True)
    try:
        plan = ctx.sql(case.sql).plan
        config = RunConfig(
            workers=setting.workers,
            executor="inline",
            optimize=setting.optimize,
            disabled_rules=frozenset(setting.disabled_rules),
        )
        frame = collect(plan, config)
        return Answer(rows=tuple(frame.rows()))
    except DSLError as exc:
        return Answer(error=f"{type(exc).__name__}: {exc}")
    except BaseException as exc:  # noqa: BLE001 - polars panics are BaseExceptions; each one is a bug
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return Answer(error=f"{type(exc).__module__}.{type(exc).__name__}: {exc}", foreign=True)


def _norm(v: object) -> object:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.replace(tzinfo=None)
    return v


def _sort_key(row: tuple) -> tuple:
    out = []
    for v in row:
        if v is None:
            out.append((2, ""))
        elif isinstance(v, float) and math.isnan(v):
            out.append((1, ""))
        elif isinstance(v, float):
            # 9 significant digits (tiny values stay apart); + 0.0: -0.0 and 0.0 are one value
            out.append((0, repr(float(f"{v:.9g}") + 0.0)))
        else:
            out.append((0, repr(v)))
    return tuple(out)


def same_value(x: object, y: object) -> bool:
    x, y = _norm(x), _norm(y)
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y or x == y and type(x) is type(y)
    if isinstance(x, float) or isinstance(y, float):
        if x is None or y is None or isinstance(x, (str, dt.datetime)) or isinstance(y, (str, dt.datetime)):
            return False
        x, y = float(x), float(y)
        return (math.isnan(x) and math.isnan(y)) or x == y or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    return x == y and (x is None) == (y is None)


def same_rows(ours: tuple[tuple, ...], theirs: tuple[tuple, ...], ordered: bool) -> bool:
    if len(ours) != len(theirs):
        return False
    if not ordered:
        ours = tuple(sorted(ours, key=lambda r: _sort_key(tuple(_norm(v) for v in r))))
        theirs = tuple(sorted(theirs, key=lambda r: _sort_key(tuple(_norm(v) for v in r))))
    return all(len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b)) for a, b in zip(ours, theirs))


def agree(ours: Answer, theirs: Answer, ordered: bool) -> bool:
    """Both give the same rows, or both fail (ours with a DSLError)."""
    if ours.foreign:
        return False
    if ours.error is not None or theirs.error is not None:
        return ours.error is not None and theirs.error is not None
    return same_rows(ours.rows or (), theirs.rows or (), ordered)


def disagreement(case: Case) -> tuple[Setting, Answer, Answer] | None:
    """The first setting whose answer is not DuckDB's, with both answers; None when all agree."""
    theirs = duckdb_answer(case)
    for setting in case.settings:
        ours = our_answer(case, setting)
        if not agree(ours, theirs, case.ordered):
            return setting, ours, theirs
    return None


def describe(found: tuple[Setting, Answer, Answer]) -> str:
    setting, ours, theirs = found
    return f"{setting}: ours {_short(ours)}\n  duckdb {_short(theirs)}"


def difference(case: Case) -> str | None:
    """None when every setting agrees with DuckDB; else a description of the first disagreement."""
    found = disagreement(case)
    return None if found is None else describe(found)


def _short(answer: Answer, limit: int = 600) -> str:
    text = str(answer)
    return text if len(text) <= limit else text[:limit] + " ..."
