"""The `generator` connector: Yahoo Streaming Benchmark events and campaigns, made up on the fly.

`kind = 'ysb'` emits ad events (user_id, page_id, ad_id, ad_type, event_type,
event_time, ip_address). Event i happens at `start + floor(i * 1000 / rate)`
milliseconds and everything else about it is a hash of (seed, i), so a seed
always gives the same events however they are split into micro-batches. Ads
are 100 campaigns of 10 ads each; `kind = 'ysb_campaigns'` is that mapping
(ad_id, campaign_id) as a table. Generation is vectorized (numpy hashes,
polars gathers from small pools of ids): no Python loop per event.

Options: `rate` (events per second of event time, default 1000000), `count`
(makes the stream bounded), `seed` (1), `start` ('2026-01-01T00:00:00'),
`format` ('json': produce JSON text and decode it per batch, as the original
benchmark does), `realtime` ('false' never waits, even for a continuous query),
`splits` (read by that many map tasks, or 'workers': part i of n takes the
i-th n-th of each batch's event indexes, so the parts together are the batch).
"""

from __future__ import annotations

import datetime as dt
import io
import time
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl

from stream_dsl.connectors.base import SourceBatch, read_schema
from stream_dsl.connectors.decode import conform
from stream_dsl.connectors.decode_ndjson import decode_ndjson
from stream_dsl.connectors.timestamps import with_units
from stream_dsl.connectors.options import as_bool, as_int, as_positive_rate, check_keys
from stream_dsl.connectors.option_specs import Option, option_names
from stream_dsl.connectors.statistics import Statistics, int_option
from stream_dsl.errors import ConnectorError, DSLError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.bind.typecheck import parse_timestamp
from stream_dsl.ir.types import DataType, Schema

EVENT_TYPES = ("view", "click", "purchase")
AD_TYPES = ("banner", "modal", "sponsored-search", "mail", "mobile")
CAMPAIGNS, ADS_PER_CAMPAIGN = 100, 10
USERS, PAGES, IPS = 1000, 1000, 256
DEFAULT_RATE = 1_000_000
DEFAULT_START = "2026-01-01T00:00:00"

S = DataType.STRING
YSB_SCHEMA = Schema.of(
    ("user_id", S),
    ("page_id", S),
    ("ad_id", S),
    ("ad_type", S),
    ("event_type", S),
    ("event_time", DataType.TIMESTAMP),
    ("ip_address", S),
)
CAMPAIGNS_SCHEMA = Schema.of(("ad_id", S), ("campaign_id", S))
KINDS = {"ysb": YSB_SCHEMA, "ysb_campaigns": CAMPAIGNS_SCHEMA}
SOURCE_SPECS = (
    Option("kind", "choice", "what to generate: YSB events or the YSB campaigns table", True, choices=tuple(KINDS)),
    Option("rate", "rate", "events per second of event time", default=str(DEFAULT_RATE)),
    Option("count", "int", "events in all (default: unbounded)", minimum=0),
    Option("seed", "int", "the random seed", default="1"),
    Option("start", "string", "the first event's time (ISO-8601)", default=DEFAULT_START),
    Option("format", "choice", "columns, or one JSON text column", default="columns", choices=("columns", "json")),
)
OPTIONS = option_names(SOURCE_SPECS)
OPTION_SPECS = {"source": SOURCE_SPECS, "table": SOURCE_SPECS}
SPLITS = True  # a split part reads its share of each batch's event indexes (`GeneratorSource.next_batch`)

# The clock pacing uses; tests swap in a manual one.
_monotonic = time.monotonic
_sleep = time.sleep
_wall = time.time

_U64 = np.uint64
_M32, _M16 = _U64(0xFFFFFFFF), _U64(0xFFFF)


# ----------------------------------------------------------------- randomness


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a counter-based hash, so event i needs no state from events before it."""
    x = x + _U64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _mix_int(value: int) -> int:
    return int(_mix(np.array([value % 2**64], dtype=np.uint64))[0])


def _below(bits: np.ndarray, n: int, width: int) -> np.ndarray:
    """Map `width`-bit uniform values onto 0..n-1 (multiply-shift: no modulo bias to speak of)."""
    return (bits * _U64(n)) >> _U64(width)


def _uuid_like(seed: int, namespace: int, k: int) -> str:
    """A deterministic UUID-shaped id: 32 hex digits from two hashes of (seed, namespace, k)."""
    base = _mix_int(seed * 0x1000193 + namespace * 0x9E3779B1) ^ k
    h = f"{_mix_int(base):016x}{_mix_int(base + 0x5BD1E995):016x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


def _uuids_like(seed: int, namespace: int, count: int) -> list[str]:
    """`_uuid_like(seed, namespace, k)` for k in 0..count-1, the hashes computed for all k at once (numpy)."""
    base = _U64(_mix_int(seed * 0x1000193 + namespace * 0x9E3779B1)) ^ np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        high, low = _mix(base).tolist(), _mix(base + _U64(0x5BD1E995)).tolist()
    out = []
    for a, b in zip(high, low):
        h = f"{a:016x}{b:016x}"
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}")
    return out


@lru_cache(maxsize=16)
def _pools(seed: int) -> dict[str, pl.Series]:
    """The values events pick from (ads, campaigns, users, pages, IPs): made once per seed, all hashes at once
    (a hash per value in Python cost about 0.2 s, paid inside the first batch of a paced run)."""
    ips = [
        f"{10 + (h >> 24) % 200}.{(h >> 16) % 256}.{(h >> 8) % 256}.{h % 256}"
        for h in _mix(np.array([(seed * 7919 + k) % 2**64 for k in range(IPS)], dtype=np.uint64)).tolist()
    ]
    return {
        "ad_id": pl.Series("ad_id", _uuids_like(seed, 1, CAMPAIGNS * ADS_PER_CAMPAIGN)),
        "campaign_id": pl.Series("campaign_id", _uuids_like(seed, 2, CAMPAIGNS)),
        "user_id": pl.Series("user_id", _uuids_like(seed, 3, USERS)),
        "page_id": pl.Series("page_id", _uuids_like(seed, 4, PAGES)),
        "ad_type": pl.Series("ad_type", AD_TYPES),
        "event_type": pl.Series("event_type", EVENT_TYPES),
        "ip_address": pl.Series("ip_address", ips),
    }


# ---------------------------------------------------------------------- events


def first_event_at(offset_ms: int, rate: Fraction) -> int:
    """Index of the first event whose time offset is >= offset_ms: ceil(offset_ms * rate / 1000)."""
    return -((-offset_ms * rate.numerator) // (1000 * rate.denominator))


def event_offsets_ms(first: int, stop: int, rate: Fraction) -> np.ndarray:
    """floor(i * 1000 / rate) for i in [first, stop), exactly."""
    idx = np.arange(first, stop, dtype=np.int64)
    return (idx * (1000 * rate.denominator)) // rate.numerator


def ysb_frame(
    first: int, stop: int, *, seed: int, rate: Fraction, start_ms: int, columns: tuple[str, ...] = YSB_SCHEMA.names
) -> pl.DataFrame:
    """Events first..stop-1 with only `columns`, in that order."""
    pools = _pools(seed)
    idx = np.arange(first, stop, dtype=np.uint64)
    key = _U64(_mix_int(seed))
    h1 = _mix(idx ^ key)
    h2 = _mix(h1) if {"user_id", "page_id", "ip_address"} & set(columns) else h1
    choices = {
        "ad_id": lambda: _below(h1 & _M32, CAMPAIGNS * ADS_PER_CAMPAIGN, 32),
        "event_type": lambda: _below((h1 >> _U64(32)) & _M16, len(EVENT_TYPES), 16),
        "ad_type": lambda: _below(h1 >> _U64(48), len(AD_TYPES), 16),
        "user_id": lambda: _below(h2 & _M16, USERS, 16),
        "page_id": lambda: _below((h2 >> _U64(16)) & _M16, PAGES, 16),
        "ip_address": lambda: _below((h2 >> _U64(32)) & _M16, IPS, 16),
    }
    if not columns:
        return pl.DataFrame(height=max(stop - first, 0))
    # The indexes (and the times, as numpy datetime64) become columns without a polars query; then one query
    # picks every column's values from its pool: each Series method is a query of its own, about 0.1 ms fixed,
    # which a small batch (a split part, a 10 ms batch) paid several times over.
    raw = {
        name: (event_offsets_ms(first, stop, rate) + start_ms).astype("datetime64[ms]")
        if name == "event_time"
        else choices[name]().astype(np.uint32)
        for name in columns
    }
    return pl.DataFrame(raw).select(
        pl.col(name) if name == "event_time" else pl.lit(pools[name]).gather(pl.col(name)).alias(name)
        for name in columns
    )


def campaigns_frame(seed: int) -> pl.DataFrame:
    pools = _pools(seed)
    owner = np.arange(CAMPAIGNS * ADS_PER_CAMPAIGN, dtype=np.uint32) // ADS_PER_CAMPAIGN
    return pl.DataFrame([pools["ad_id"], pools["campaign_id"].gather(pl.Series(owner))])


def parse_start_ms(text: str) -> int:
    stamp = parse_timestamp(text)
    return int((stamp - dt.datetime(1970, 1, 1)) / dt.timedelta(milliseconds=1))


def ysb_events(count: int, seed: int = 1, rate: float | int = DEFAULT_RATE, start: str = DEFAULT_START) -> pl.DataFrame:
    """The first `count` YSB events, every column: the same rows the generator source emits."""
    return ysb_frame(
        0, count, seed=seed, rate=Fraction(rate).limit_denominator(1_000_000), start_ms=parse_start_ms(start)
    )


def ysb_campaigns(seed: int = 1) -> pl.DataFrame:
    """The 1000 ads (ad_id, campaign_id) of 100 campaigns the events of `seed` refer to."""
    return campaigns_frame(seed)


def events_as_json(frame: pl.DataFrame) -> bytes:
    """Events as JSON lines, event_time as a string of epoch milliseconds, like the original benchmark."""
    if "event_time" in frame.columns:
        frame = frame.with_columns(pl.col("event_time").dt.epoch("ms").cast(pl.String))
    buffer = io.BytesIO()
    frame.write_ndjson(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------- source


@dataclass(frozen=True, slots=True)
class GeneratorSpec:
    kind: str
    seed: int
    rate: Fraction
    count: int | None
    start_ms: int
    json: bool
    realtime: bool

    @classmethod
    def parse(cls, definition: SourceDef) -> "GeneratorSpec":
        what = f"source '{definition.name}'"
        check_keys(definition.options, OPTIONS, what=what)
        kind = (definition.option("kind") or "").strip().lower()
        if kind not in KINDS:
            raise ConnectorError(
                f"{what}: the generator needs kind = 'ysb' or 'ysb_campaigns'" + (f", got '{kind}'" if kind else "")
            )
        fmt = (definition.option("format") or "columns").strip().lower()
        if fmt not in ("json", "columns"):
            raise ConnectorError(f"{what}: option format must be 'json' or 'columns', got '{fmt}'")
        try:
            start_ms = parse_start_ms(definition.option("start", DEFAULT_START))
        except DSLError as e:
            raise ConnectorError(f"{what}: option start: {e}") from None
        _check_schema(definition, KINDS[kind], what)
        return cls(
            kind=kind,
            seed=as_int(definition.option("seed", "1"), key="seed", what=what),
            rate=as_positive_rate(definition.option("rate", str(DEFAULT_RATE)), key="rate", what=what),
            count=as_int(definition.option("count"), key="count", what=what, minimum=0),
            start_ms=start_ms,
            json=fmt == "json",
            realtime=as_bool(definition.option("realtime"), key="realtime", what=what, default=True),
        )


def _check_schema(definition: SourceDef, native: Schema, what: str) -> None:
    for field in definition.schema:
        if field.name not in native:
            raise ConnectorError(
                f"{what}: the {definition.option('kind')} generator has no column '{field.name}'; it produces {native}"
            )


def _as_declared(frame: pl.DataFrame, schema: Schema, source: str) -> pl.DataFrame:
    """Cast generated columns to the declared types when a user declared them differently."""
    if all(frame.schema[f.name] == f.dtype.polars for f in schema):
        return frame
    return conform(frame, schema, source=source, origin="generator").frame


class GeneratorSource:
    """YSB events; one micro-batch covers `batch_interval_ms` of event time."""

    replays_from_start = True  # without a checkpoint, a new run reads from the start (`base.Source`)

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self.spec = GeneratorSpec.parse(definition)
        self._schema = definition.schema
        self._time_ms = 0
        self._opened_at: float | None = None  # the pacing clock (`_clock`)
        self._opened_time_ms = 0
        self._resumed_anchor: float | None = None

    @property
    def bounded(self) -> bool:
        return self.spec.count is not None or self.spec.kind == "ysb_campaigns"

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        self._schema = read_schema(self.definition, columns, f"source '{self.definition.name}'")
        self._time_ms = int(offset.get("time_ms", 0)) if isinstance(offset, dict) else 0
        _pools(self.spec.seed)  # before the pacing clock starts: not a cost of the first batch
        self._opened_at = None
        self._opened_time_ms = self._time_ms
        anchor = offset.get("anchor") if isinstance(offset, dict) else None
        self._resumed_anchor = anchor if isinstance(anchor, (int, float)) else None

    def _clock(self) -> float:
        """The monotonic time at which event time `_opened_time_ms` is due: the first read's. Started there,
        not at open, so that a latency measured from the first task's start (`bench/latency.py`) never counts
        from before the clock began (it printed a negative p50 when the query's set-up between open and the
        first task was long). Resumed from a checkpoint of a paced run, the events kept coming at wall-clock
        pace meanwhile, so the ones now due are there at once (a replay catches up, as from a log)."""
        if self._opened_at is None:
            self._opened_at = _monotonic()
            if self._resumed_anchor is not None:
                self._opened_at -= _wall() - (self._resumed_anchor + self._opened_time_ms / 1000)
        return self._opened_at

    replays_exactly = True  # `until` names the batch's end in event time

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False, until: Any = None) -> SourceBatch:
        if self.spec.kind == "ysb_campaigns":  # read as a stream: every row in the first batch
            already_sent = self._time_ms > 0
            self._time_ms = 1
            frame = _as_declared(
                campaigns_frame(self.spec.seed).select(self._schema.names), self._schema, self.definition.name
            )
            return SourceBatch(frame.clear() if already_sent else frame, exhausted=True, offset={"time_ms": 1})
        begin, end = self._time_ms, self._time_ms + batch_interval_ms
        if isinstance(until, dict) and isinstance(until.get("time_ms"), int):
            end = max(begin, until["time_ms"])  # a replay: the batch an earlier run cut there
        rate, count = self.spec.rate, self.spec.count
        first, stop = first_event_at(begin, rate), first_event_at(end, rate)
        if count is not None:
            first, stop = min(first, count), min(stop, count)
        exhausted = count is not None and stop >= count
        if self.definition.split is not None:  # this part's share of the batch's events
            index, parts = self.definition.split
            first, stop = first + (stop - first) * index // parts, first + (stop - first) * (index + 1) // parts
        offset: dict[str, Any] = {"time_ms": end}
        wall_offset = None
        if realtime and self.spec.realtime:
            clock = self._clock()
            wait = clock + (end - self._opened_time_ms) / 1000 - _monotonic()
            if wait > 0:
                _sleep(wait)
            # when event time 0 was due on the wall clock: a run resumed from this offset keeps the pace
            offset["anchor"] = _wall() - (_monotonic() - clock) - self._opened_time_ms / 1000
            wall_offset = round(offset["anchor"] * 1000) - self.spec.start_ms
        self._time_ms = end
        frame, letters = self._events(first, stop)
        last = None
        if stop > first:
            last = self.spec.start_ms + int(event_offsets_ms(stop - 1, stop, rate)[0])
        return SourceBatch(
            frame=frame,
            exhausted=exhausted,
            offset=offset,
            dead_letters=letters,
            max_event_time_ms=last,
            wall_offset_ms=wall_offset,
        )

    def _events(self, first: int, stop: int) -> tuple[pl.DataFrame, list]:
        spec, name = self.spec, self.definition.name
        if spec.json:
            text = events_as_json(ysb_frame(first, stop, seed=spec.seed, rate=spec.rate, start_ms=spec.start_ms))
            ms = {f.name: "ms" for f in self._schema if f.dtype is DataType.TIMESTAMP}  # what events_as_json writes
            decoded = decode_ndjson(
                text, with_units(self._schema, ms), source=name, origin="generator", full_schema=self.definition.schema
            )
            return decoded.frame, list(decoded.dead_letters)
        frame = ysb_frame(
            first, stop, seed=spec.seed, rate=spec.rate, start_ms=spec.start_ms, columns=self._schema.names
        )
        return _as_declared(frame, self._schema, name), []

    def close(self) -> None:
        pass


class CampaignsTable:
    """The built-in YSB campaigns table: 1000 ads of 100 campaigns."""

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self.spec = GeneratorSpec.parse(definition)
        if self.spec.kind != "ysb_campaigns":
            raise ConnectorError(
                f"table '{definition.name}': a generator table needs kind = 'ysb_campaigns' "
                f"(kind = 'ysb' is a stream: use CREATE STREAM)"
            )

    def read(self, columns: list[str] | None = None) -> pl.DataFrame:
        schema = self.definition.schema if columns is None else self.definition.schema.select(columns)
        frame = campaigns_frame(self.spec.seed).select(schema.names)
        return _as_declared(frame, schema, self.definition.name)


# Distinct values of each kind's columns, for the cost model; event_time is unique.
NDV = {
    "ysb": {
        "user_id": USERS,
        "page_id": PAGES,
        "ad_id": CAMPAIGNS * ADS_PER_CAMPAIGN,
        "ad_type": len(AD_TYPES),
        "event_type": len(EVENT_TYPES),
        "ip_address": IPS,
    },
    "ysb_campaigns": {"ad_id": CAMPAIGNS * ADS_PER_CAMPAIGN, "campaign_id": CAMPAIGNS},
}


def statistics(definition: SourceDef, batch_interval_ms: int) -> Statistics:
    """Rows per batch from the rate (capped by `count`), the known cardinalities, a batch's time span."""
    kind = (definition.option("kind") or "").lower()
    ndv = NDV.get(kind, {})
    if kind == "ysb_campaigns":
        return Statistics(
            rows_per_batch=float(CAMPAIGNS * ADS_PER_CAMPAIGN),
            rows_total=float(CAMPAIGNS * ADS_PER_CAMPAIGN),
            bounded=True,
            ndv=lambda column: None if column not in ndv else float(ndv[column]),
        )
    count = int_option(definition, "count")
    rows = float(definition.option("rate") or DEFAULT_RATE) * batch_interval_ms / 1000
    return Statistics(
        rows_per_batch=float(min(rows, count)) if count is not None else rows,
        rows_total=None if count is None else float(count),
        bounded=count is not None,
        ndv=lambda column: None if column not in ndv else float(ndv[column]),
        batch_span_ms=lambda column: float(batch_interval_ms),
    )


def make_source(definition: SourceDef) -> GeneratorSource:
    return GeneratorSource(definition)


def make_table(definition: SourceDef) -> CampaignsTable:
    return CampaignsTable(definition)


__all__ = [
    "ysb_events",
    "ysb_campaigns",
    "ysb_frame",
    "campaigns_frame",
    "events_as_json",
    "GeneratorSource",
    "CampaignsTable",
    "make_source",
    "make_table",
    "statistics",
    "YSB_SCHEMA",
    "CAMPAIGNS_SCHEMA",
]
