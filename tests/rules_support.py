"""Support for the optimizer rule tests: golden files, and an in-memory twin of the fixture catalog.

Golden files (`tests/rules/<rule>/<case>.txt`) are data:

    # title: what the case shows
    # prepare: fold_constants            (optional: rules applied once, in order, first)
    -- sql
    SELECT ...
    -- before
    <render_plan of the bound plan, after `prepare`>
    -- after
    <render_plan after applying the rule once>

A case whose `after` equals its `before` says the rule must not fire (it
returns the very same plan object). `--update-goldens` rewrites before and
after from the current code; review the diff.

`data_context()` registers every stream and table of `conftest.CATALOG_DDL`
under the same name and schema (and watermark) as in-memory frames, so the
SQL of every golden case also runs, optimized and not, and the results are
compared.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

import stream_dsl as sd
from stream_dsl.config import RunConfig
from stream_dsl.ir.plan import Limit, Plan, walk

GOLDENS = Path(__file__).parent / "rules"
SECTIONS = ("sql", "before", "after")


@dataclass(frozen=True)
class Golden:
    path: Path
    title: str
    prepare: tuple[str, ...]
    sql: str
    before: str
    after: str

    @property
    def rule(self) -> str:
        return self.path.parent.name


def golden_paths() -> list[Path]:
    return sorted(GOLDENS.glob("*/*.txt"))


def read_golden(path: Path) -> Golden:
    headers: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text().splitlines():
        if line.startswith("-- ") and line[3:].strip() in SECTIONS:
            current = sections.setdefault(line[3:].strip(), [])
        elif current is None and line.startswith("#"):
            key, _, value = line[1:].partition(":")
            headers[key.strip()] = value.strip()
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise ValueError(f"{path}: text before the first section: {line!r}")
    missing = [s for s in SECTIONS if s not in sections]
    if missing or "title" not in headers:
        raise ValueError(f"{path}: needs a '# title:' header and the sections {', '.join(SECTIONS)}")
    text = {name: "\n".join(lines).strip("\n") for name, lines in sections.items()}
    prepare = tuple(p.strip() for p in headers.get("prepare", "").split(",") if p.strip())
    return Golden(path, headers["title"], prepare, text["sql"], text["before"], text["after"])


def write_golden(golden: Golden, before: str, after: str) -> None:
    lines = [f"# title: {golden.title}"]
    if golden.prepare:
        lines.append(f"# prepare: {', '.join(golden.prepare)}")
    lines += ["-- sql", golden.sql, "-- before", before, "-- after", after, ""]
    golden.path.write_text("\n".join(lines))


# ---------------------------------------------------------------- data


T0 = dt.datetime(2024, 1, 1)


def _pick(rng: random.Random, values: list, null_share: float = 0.1) -> object:
    return None if rng.random() < null_share else rng.choice(values)


def _quarters(rng: random.Random, low: int, high: int, null_share: float = 0.1) -> float | None:
    """A multiple of 0.25: sums of these are exact in binary, whatever order they are added in."""
    return None if rng.random() < null_share else rng.randint(low * 4, high * 4) / 4


def _times(rng: random.Random, n: int, max_step_ms: int) -> list[dt.datetime]:
    """Non-decreasing event times (no late rows, so results do not depend on batching)."""
    ms, out = 0, []
    for _ in range(n):
        ms += rng.randint(0, max_step_ms)
        out.append(T0 + dt.timedelta(milliseconds=ms))
    return out


def catalog_frames(seed: int = 7) -> dict[str, pl.DataFrame]:
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(10)]
    ads = [f"a{i}" for i in range(12)]
    n = 160
    events = pl.DataFrame(
        {
            "user_id": [_pick(rng, users) for _ in range(n)],
            "page_id": [_pick(rng, ["p1", "p2", "p3"]) for _ in range(n)],
            "ad_id": [_pick(rng, ads) for _ in range(n)],
            "ad_type": [_pick(rng, ["banner", "video", "mail"]) for _ in range(n)],
            "event_type": [_pick(rng, ["view", "click", "purchase"]) for _ in range(n)],
            "event_time": _times(rng, n, 600),
            "ip_address": [_pick(rng, ["10.0.0.1", "10.0.0.2"]) for _ in range(n)],
        },
        schema_overrides={"event_time": pl.Datetime("ms")},
    )
    campaigns = pl.DataFrame(
        {
            "ad_id": [f"a{i}" for i in range(10)] + [None],
            "campaign_id": [f"c{i % 4}" for i in range(10)] + ["c9"],
        }
    )
    m = 80
    clicks = pl.DataFrame(
        {
            "user_id": [_pick(rng, users) for _ in range(m)],
            "url": [_pick(rng, ["/a", "/b", "/shop/x", "/shop/y"]) for _ in range(m)],
            "ts": _times(rng, m, 1500),
            "duration_ms": [None if rng.random() < 0.1 else rng.randint(0, 5000) for _ in range(m)],
        },
        schema_overrides={"ts": pl.Datetime("ms"), "duration_ms": pl.Int64},
    )
    sensors = pl.DataFrame(
        {
            "sensor_id": [rng.randint(1, 6) for _ in range(m)],
            "temperature": [_quarters(rng, -5, 35) for _ in range(m)],
            "humidity": [_quarters(rng, 0, 100) for _ in range(m)],
            "ok": [_pick(rng, [True, False]) for _ in range(m)],
            "ts": _times(rng, m, 2000),
        },
        schema_overrides={"sensor_id": pl.Int32, "ts": pl.Datetime("ms")},
    )
    users_table = pl.DataFrame(
        {
            "user_id": users[:8] + [None],
            "country": ["NL", "DE", "US", "NL", None, "DE", "FR", "US", "NL"],
            "age": [17, 25, 33, 41, 58, 19, None, 70, 30],
        },
        schema_overrides={"age": pl.Int32},
    )
    transactions = pl.DataFrame(
        {
            "tx_id": list(range(m)),
            "account": [_pick(rng, ["acc1", "acc2", "acc3", "bob"]) for _ in range(m)],
            "amount": [_quarters(rng, -50, 500) for _ in range(m)],
            "merchant": [_pick(rng, ["shop", "bar", "cafe"]) for _ in range(m)],
            "ts": _times(rng, m, 3000),
        },
        schema_overrides={"tx_id": pl.Int64, "ts": pl.Datetime("ms")},
    )
    return {
        "events": events,
        "campaigns": campaigns,
        "clicks": clicks,
        "sensors": sensors,
        "users": users_table,
        "transactions": transactions,
    }


WATERMARKS = {"events": ("event_time", "1s"), "clicks": ("ts", "5s")}
TABLES = ("campaigns", "users")


def data_context(seed: int = 7, batch_size: int = 16) -> sd.Context:
    """A Context whose streams and tables are those of the fixture catalog, as in-memory frames."""
    ctx = sd.Context(executor="inline", workers=1, optimize=False)
    for name, frame in catalog_frames(seed).items():
        if name in TABLES:
            ctx.table_from_polars(name, frame)
            continue
        column, delay = WATERMARKS.get(name, (None, "0s"))
        ctx.from_polars(frame, name, watermark=column, watermark_delay=delay, batch_size=batch_size)
    return ctx


def run(plan: Plan, *, workers: int = 1) -> pl.DataFrame:
    """The plan's result on the inline executor, exactly as given (the executor's optimizer off)."""
    from executor.api import collect

    return collect(plan, RunConfig(executor="inline", workers=workers, optimize=False))


def has_limit(plan: Plan) -> bool:
    return any(isinstance(node, Limit) for node in walk(plan))


def assert_same_result(expected: pl.DataFrame, actual: pl.DataFrame, *, rows_only: bool = False) -> None:
    """The same rows in any order (or, with `rows_only`, as many rows: LIMIT picks any n)."""
    assert actual.schema == expected.schema
    if rows_only:
        assert actual.height == expected.height
        return
    columns = expected.columns
    assert_frame_equal(expected.sort(columns, nulls_last=True), actual.sort(columns, nulls_last=True))
