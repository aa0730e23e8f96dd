"""Checking a query before production: streaming it gives what one batch over the same rows gives.

The engine's core property (DESIGN.md §4) is that on bounded input with no
late rows `collect()` equals the query computed in one batch, for every
executor, worker count, batch split and optimizer setting. `verify` checks it
for the user's own query and data: it reads each stream the query reads once,
whole (the streams must be bounded: files without watch, a generator with a
count), then runs the query over the same rows as a memory source many ways —
random micro-batch splits, each executor, 1 and 2 workers, the optimizer on
and off — and compares each result with the reference: the inline executor,
one batch, optimizer off. Where the query is plain SQL and DuckDB is installed,
DuckDB's result over the same rows is compared too.

It stops at the first difference and says which rows differ and which setting
produced them, with the late rows that run dropped (a watermark too tight for
the data is the usual cause). Results are compared as multisets (row order is
not compared; floats to 9 significant digits); a LIMIT without ORDER BY may
pick any rows, so only its row count is compared.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from stream_dsl.catalog import Catalog
from stream_dsl.config import RunConfig
from stream_dsl.errors import DSLError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.plan import Limit, Plan, Scan, Sort, walk

EXECUTORS = ("inline", "drizzle", "bsp")
WORKERS = (1, 2)
SEEDS = 3
MAX_BATCHES = 24  # random splits cut each stream into 2..MAX_BATCHES micro-batches
_OCCURRENCE = "__sd_verify_n"  # which copy of a duplicated row: rows compare as a multiset


@dataclass(frozen=True, slots=True)
class Setting:
    """One way of running the query. `seed` None: each stream in one batch (the reference's split)."""

    executor: str
    workers: int
    optimize: bool
    seed: int | None

    def describe(self) -> str:
        split = "one batch per stream" if self.seed is None else f"random micro-batch split (seed {self.seed})"
        optimizer = "on" if self.optimize else "off"
        return f"executor={self.executor}, workers={self.workers}, optimizer={optimizer}, {split}"


REFERENCE = Setting("inline", 1, False, None)


@dataclass(frozen=True)
class Difference:
    """What one setting's result has that the reference's lacks, and the other way round."""

    setting: Setting
    against: str  # "the single-batch run" or "DuckDB"
    missing: pl.DataFrame  # the reference's rows this run lacks
    extra: pl.DataFrame  # this run's rows the reference lacks
    batch_rows: dict[str, list[int]] = field(default_factory=dict)  # rows per micro-batch, per stream
    late_rows: int = 0
    note: str = ""  # a difference that is not rows (the columns, an error)

    def __str__(self) -> str:
        lines = [f"DIFFERENT from {self.against} under {self.setting.describe()}"]
        for stream, sizes in self.batch_rows.items():
            shown = ", ".join(str(n) for n in sizes[:12]) + (", ..." if len(sizes) > 12 else "")
            lines.append(f"  stream {stream}: {len(sizes)} batches of {shown} rows")
        if self.note:
            lines.append(f"  {self.note}")
        if self.late_rows:
            lines.append(
                f"  this run dropped {self.late_rows} late rows: rows arrived after the watermark passed their "
                "window; a longer watermark delay keeps them (WATERMARK FOR ... AS col - INTERVAL ...)"
            )
        for title, rows in (("missing (in the reference, not here)", self.missing), ("extra (here only)", self.extra)):
            if rows.height:
                lines.append(f"  {rows.height} rows {title}:")
                lines.extend("    " + line for line in str(rows.head(10)).splitlines())
        return "\n".join(lines)


@dataclass(frozen=True)
class Verification:
    """The outcome: every setting run, the first difference (None: all equal) and what DuckDB said."""

    settings: tuple[Setting, ...]
    reference_rows: int
    difference: Difference | None
    duckdb: str  # "equal", "different" or "skipped: <why>"

    @property
    def ok(self) -> bool:
        return self.difference is None

    def __str__(self) -> str:
        head = f"{len(self.settings)} runs compared with the single-batch run ({self.reference_rows} rows)"
        if self.difference is not None:
            return f"{head}: {self.difference}"
        return f"{head}: all equal. DuckDB: {self.duckdb}."


# ---------------------------------------------------------------- comparing results


def _normalised(frame: pl.DataFrame) -> pl.DataFrame:
    """Floats to 9 significant digits, and each row numbered among its equal copies."""
    rounded = frame.with_columns(pl.col(c).round_sig_figs(9) for c, t in frame.schema.items() if t.is_float())
    if not frame.width:
        return rounded
    return rounded.with_columns(pl.int_range(pl.len()).over(frame.columns).alias(_OCCURRENCE))


def row_differences(reference: pl.DataFrame, result: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows of `reference` missing from `result`, rows of `result` not in `reference`), as multisets."""
    ref, got = _normalised(reference), _normalised(result.select(reference.columns))
    on = ref.columns
    missing = ref.join(got, on=on, how="anti", nulls_equal=True).drop(_OCCURRENCE, strict=False)
    extra = got.join(ref, on=on, how="anti", nulls_equal=True).drop(_OCCURRENCE, strict=False)
    return missing, extra


def _compare(
    reference: pl.DataFrame, result: pl.DataFrame, setting: Setting, against: str, count_only: bool, **context: Any
) -> Difference | None:
    if result.columns != reference.columns:
        note = f"columns {result.columns} instead of {reference.columns}"
        return Difference(setting, against, reference.clear(), result.clear(), note=note, **context)
    if count_only:
        if result.height == reference.height:
            return None
        note = f"{result.height} rows instead of {reference.height} (a LIMIT without ORDER BY: only counts compared)"
        return Difference(setting, against, reference.clear(), result.clear(), note=note, **context)
    missing, extra = row_differences(reference, result)
    if missing.height or extra.height:
        return Difference(setting, against, missing, extra, **context)
    return None


# ---------------------------------------------------------------- the runs


def cut_points(rng: random.Random) -> list[float]:
    """Where a random split cuts, as fractions of a stream: the same fractions for every stream keep
    streams roughly together in event time, as live sources would be."""
    batches = rng.randint(2, MAX_BATCHES)
    return sorted(rng.random() for _ in range(batches - 1))


def split(frame: pl.DataFrame, fractions: Sequence[float]) -> list[pl.DataFrame]:
    """`frame` cut at `fractions` of its rows, in order (empty batches allowed: a quiet source)."""
    bounds = [0] + [round(f * frame.height) for f in fractions] + [frame.height]
    return [frame.slice(start, end - start) for start, end in itertools.pairwise(bounds)]


@dataclass
class _Inputs:
    """Each stream's rows, read once, and the plan reading them from memory instead."""

    frames: dict[SourceDef, pl.DataFrame]
    ids: list[str] = field(default_factory=list)

    def plan_over(self, plan: Plan, batches: dict[SourceDef, list[pl.DataFrame]]) -> Plan:
        from optimizer.rules.analysis import transform_up
        from stream_dsl.connectors import memory

        sources: dict[SourceDef, SourceDef] = {}
        for source, parts in batches.items():
            id = memory.register(memory.new_id("verify"), parts)
            self.ids.append(id)
            options = (("connector", "memory"), ("id", id))
            sources[source] = replace(source, options=options, split=None)

        def swap(node: Plan) -> Plan:
            if isinstance(node, Scan) and node.source in sources:
                return replace(node, source=sources[node.source])
            return node

        return transform_up(plan, swap)

    def release(self) -> None:
        from stream_dsl.connectors import memory

        for id in self.ids:
            memory.unregister(id)
        self.ids.clear()


def read_streams(plan: Plan, catalog: Catalog | None) -> dict[SourceDef, pl.DataFrame]:
    """Every stream `plan` reads, whole; refused for a stream that never ends."""
    from executor.api import collect
    from optimizer.cost import statistics

    frames: dict[SourceDef, pl.DataFrame] = {}
    for scan in (n for n in walk(plan) if isinstance(n, Scan) and n.source.kind == "stream"):
        source = scan.source
        if source in frames:
            continue
        if statistics(source).bounded is not True:
            raise DSLError(
                f"verify needs bounded input: stream '{source.name}' ({source.option('connector')}) never ends; "
                "point it at a bounded copy of its data (e.g. files without watch, a generator with count)"
            )
        frames[source] = collect(Scan(source), RunConfig(executor="inline", workers=1, optimize=False), catalog)
    if not frames:
        raise DSLError("verify needs a query that reads a stream; this one reads only tables")
    return frames


def _late_rows(progress: Iterable[dict[str, Any]]) -> int:
    return sum(int(p.get("late_rows") or 0) for p in progress)


def verify(
    plan: Plan,
    *,
    catalog: Catalog | None = None,
    config: RunConfig | None = None,
    sql: str | None = None,
    executors: Sequence[str] = EXECUTORS,
    workers: Sequence[int] = WORKERS,
    optimize: Sequence[bool] = (True, False),
    seeds: int | Sequence[int] = SEEDS,
    on_run: Callable[[Setting], None] | None = None,
) -> Verification:
    """Run `plan` over its streams' rows many ways and compare each result with one batch's.

    `sql`: the query's text, compared with DuckDB too when it runs there. `seeds`: how many random
    splits (or which seeds). `config` gives the other run settings (state TTL, group size, rules
    switched off). `on_run(setting)` is called before each run (progress for the command line).
    """
    import optimizer
    from executor.api import run_collect
    from executor.multiproc.pool import WorkerPool

    base = (config or RunConfig()).with_options(checkpoint_dir=None, small_collect_rows=None)
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    count_only = _limit_without_order(plan)
    inputs = _Inputs(read_streams(plan, catalog))
    pool = WorkerPool()
    settings: list[Setting] = []

    def run(setting: Setting, batches: dict[SourceDef, list[pl.DataFrame]]) -> tuple[pl.DataFrame, int]:
        if on_run is not None:
            on_run(setting)
        settings.append(setting)
        conf = base.with_options(executor=setting.executor, workers=setting.workers, optimize=setting.optimize)
        query = inputs.plan_over(plan, batches)
        if setting.optimize:
            query = optimizer.optimize(query, conf)
        result, _, progress = run_collect(query, conf, catalog, pool=lambda: pool)
        return result, _late_rows(progress)

    try:
        whole = {source: [frame] for source, frame in inputs.frames.items()}
        reference, _ = run(REFERENCE, whole)
        for seed in seed_list:
            fractions = cut_points(random.Random(seed))
            batches = {source: split(frame, fractions) for source, frame in inputs.frames.items()}
            sizes = {source.name: [b.height for b in parts] for source, parts in batches.items()}
            for executor, n, opt in itertools.product(executors, workers, optimize):
                setting = Setting(executor, n, opt, seed)
                try:
                    result, late = run(setting, batches)
                except DSLError as err:
                    empty, note = reference.clear(), f"the run failed: {err}"
                    failed = Difference(setting, "the single-batch run", empty, empty, sizes, note=note)
                    return Verification(tuple(settings), reference.height, failed, "not run")
                difference = _compare(
                    reference, result, setting, "the single-batch run", count_only, batch_rows=sizes, late_rows=late
                )
                if difference is not None:
                    return Verification(tuple(settings), reference.height, difference, "not run")
        duckdb_says, against_duckdb = _against_duckdb(sql, inputs.frames, plan, catalog, reference, count_only)
        return Verification(tuple(settings), reference.height, against_duckdb, duckdb_says)
    finally:
        inputs.release()
        pool.close()


def _limit_without_order(plan: Plan) -> bool:
    nodes = list(walk(plan))
    return any(isinstance(n, Limit) for n in nodes) and not any(isinstance(n, Sort) for n in nodes)


# ---------------------------------------------------------------- DuckDB


def _against_duckdb(
    sql: str | None,
    frames: dict[SourceDef, pl.DataFrame],
    plan: Plan,
    catalog: Catalog | None,
    reference: pl.DataFrame,
    count_only: bool,
) -> tuple[str, Difference | None]:
    """DuckDB's result of the query's text over the same rows, when it is plain SQL DuckDB runs."""
    if sql is None:
        return "skipped: no SQL text (a query built with the API)", None
    try:
        import duckdb
    except ImportError:
        return "skipped: duckdb is not installed (pip install duckdb)", None
    from executor.api import collect

    import tempfile

    with tempfile.TemporaryDirectory(prefix="stream-dsl-verify-") as tmp, duckdb.connect() as con:
        tables = {s.source for s in walk(plan) if isinstance(s, Scan) and s.source.kind == "table"}
        relations = dict(frames)
        for table in tables:
            relations[table] = collect(Scan(table), RunConfig(executor="inline", workers=1, optimize=False), catalog)
        for i, (source, frame) in enumerate(relations.items()):  # through parquet: exact types, no pyarrow
            path = f"{tmp}/{i}.parquet"
            frame.write_parquet(path)
            con.execute(f"CREATE TABLE \"{source.name}\" AS SELECT * FROM read_parquet('{path}')")
        try:
            cursor = con.execute(sql)
            rows, width = cursor.fetchall(), len(cursor.description or ())
        except duckdb.Error as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return f"skipped: DuckDB cannot run the query as plain SQL ({first})", None
    if width != reference.width:
        return f"skipped: DuckDB gives {width} columns, the query {reference.width}", None
    try:
        theirs = pl.DataFrame(rows, schema=reference.schema, orient="row")
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        return "skipped: DuckDB's column types do not convert to the query's", None
    difference = _compare(theirs, reference, REFERENCE, "DuckDB", count_only)
    if difference is not None:
        return "different", replace(difference, against="DuckDB")
    return "equal", None
