"""The generator connector: YSB events and campaigns, deterministic whatever the batching."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from stream_dsl.connectors import generator as g
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef, Watermark
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema

START = dt.datetime(2026, 1, 1)


def events(schema: Schema = g.YSB_SCHEMA, name: str = "events", relation: str = "stream", **options):
    opts = {"connector": "generator", "kind": "ysb", **{k: str(v) for k, v in options.items()}}
    return SourceDef(name, relation, schema, tuple(sorted(opts.items())), Watermark("event_time", 1000))


def run(definition: SourceDef, interval: int, columns=None, offset=None, limit: int = 10_000):
    src = g.make_source(definition)
    src.open(columns, offset)
    batches = []
    while len(batches) < limit:
        batches.append(src.next_batch(interval))
        if batches[-1].exhausted:
            break
    src.close()
    return batches


def concat(batches) -> pl.DataFrame:
    return pl.concat([b.frame for b in batches])


# -------------------------------------------------------------- determinism


def test_events_are_the_same_whatever_the_batch_interval():
    definition = events(count=5000, rate=10_000)
    whole = g.ysb_events(5000, rate=10_000)
    for interval in (1, 37, 100, 1000, 60_000):
        assert concat(run(definition, interval)).equals(whole), interval


def test_same_seed_same_events_other_seed_other_events():
    assert g.ysb_events(1000, seed=7).equals(g.ysb_events(1000, seed=7))
    assert not g.ysb_events(1000, seed=7)["ad_id"].equals(g.ysb_events(1000, seed=8)["ad_id"])
    assert g.ysb_events(10).equals(g.ysb_events(1000).head(10))


def test_resuming_from_an_offset_continues_the_same_events():
    definition = events(count=3000, rate=1000)
    batches = run(definition, 250)
    resumed = run(definition, 250, offset=batches[4].offset)
    assert concat(resumed).equals(concat(batches[5:]))


def test_generated_values_come_from_the_ysb_vocabularies():
    frame = g.ysb_events(30_000)
    assert set(frame["event_type"].unique()) == set(g.EVENT_TYPES)
    assert set(frame["ad_type"].unique()) == set(g.AD_TYPES)
    assert frame["ad_id"].n_unique() == 1000
    shares = frame["event_type"].value_counts(normalize=True)["proportion"]
    assert shares.min() > 0.3 and shares.max() < 0.37
    assert frame.null_count().sum_horizontal().item() == 0
    uuid = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    assert frame["user_id"].str.contains(uuid).all() and frame["page_id"].str.contains(uuid).all()
    assert frame["ip_address"].str.contains(r"^\d+\.\d+\.\d+\.\d+$").all()


# --------------------------------------------------------------- event time


def test_event_time_is_start_plus_floor_of_index_over_rate():
    frame = g.ysb_events(10, rate=4, start="2024-05-01 12:00:00")
    base = dt.datetime(2024, 5, 1, 12)
    assert frame["event_time"].to_list() == [base + dt.timedelta(milliseconds=i * 1000 // 4) for i in range(10)]
    assert frame.schema["event_time"] == pl.Datetime("ms")


def test_rate_sets_batch_sizes():
    sizes = [b.frame.height for b in run(events(count=3000, rate=1000), 100)]
    assert sizes == [100] * 30
    sizes = [b.frame.height for b in run(events(count=300_000, rate=1_000_000), 100)]
    assert sizes == [100_000] * 3


def test_fractional_rates_spread_events_exactly():
    batches = run(events(count=10, rate=2.5), 1000)
    assert [b.frame.height for b in batches] == [3, 2, 3, 2]
    times = concat(batches)["event_time"].dt.epoch("ms") - int(START.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert times.to_list() == [i * 1000 * 2 // 5 for i in range(10)]


def test_each_batch_covers_its_interval_of_event_time_and_reports_its_max():
    batches = run(events(count=2500, rate=1000), 1000)
    base = START.replace(tzinfo=dt.timezone.utc).timestamp() * 1000
    for k, batch in enumerate(batches):
        ms = batch.frame["event_time"].dt.epoch("ms") - base
        assert ms.min() >= k * 1000 and ms.max() < (k + 1) * 1000
        assert batch.max_event_time_ms == int(base) + int(ms.max())
        assert batch.offset == {"time_ms": (k + 1) * 1000}


# -------------------------------------------------------------------- bounds


def test_count_makes_the_stream_bounded():
    definition = events(count=1234, rate=1000)
    assert g.make_source(definition).bounded
    batches = run(definition, 100)
    assert sum(b.frame.height for b in batches) == 1234
    assert [b.exhausted for b in batches] == [False] * 12 + [True]
    assert not g.make_source(events()).bounded


def test_a_count_of_zero_is_exhausted_at_once():
    [batch] = run(events(count=0), 100)
    assert batch.exhausted and batch.frame.height == 0 and batch.max_event_time_ms is None


def test_unbounded_stream_keeps_going():
    batches = run(events(rate=1000), 100, limit=5)
    assert len(batches) == 5 and not any(b.exhausted for b in batches)
    assert concat(batches).equals(g.ysb_events(500, rate=1000))


# ------------------------------------------------------------------- columns


def test_only_requested_columns_are_produced():
    batches = run(events(count=500, rate=1000), 100, columns=["event_time", "ad_id"])
    frame = concat(batches)
    assert frame.columns == ["event_time", "ad_id"]
    assert frame.equals(g.ysb_events(500, rate=1000).select("event_time", "ad_id"))
    counted = concat(run(events(count=500, rate=1000), 100, columns=[]))
    assert counted.shape == (500, 0)


def test_a_declared_subset_and_other_types_are_honoured():
    schema = Schema.of(("ad_id", T.STRING), ("event_time", T.STRING))
    frame = concat(run(events(schema, count=2, rate=1), 1000))
    assert frame.columns == ["ad_id", "event_time"]
    assert frame["event_time"].to_list() == ["2026-01-01T00:00:00.000", "2026-01-01T00:00:01.000"]


def test_json_format_decodes_the_same_events():
    definition = events(count=2000, rate=1000, format="json")
    assert concat(run(definition, 300)).equals(g.ysb_events(2000, rate=1000))
    projected = concat(run(definition, 300, columns=["event_type", "event_time"]))
    assert projected.equals(g.ysb_events(2000, rate=1000).select("event_type", "event_time"))


def test_events_as_json_look_like_the_original_benchmark():
    line = g.events_as_json(g.ysb_events(1)).decode().splitlines()[0]
    assert '"event_time":"1767225600000"' in line and line.startswith('{"user_id":')


# ----------------------------------------------------------------- campaigns


def test_campaigns_are_100_campaigns_of_10_ads_covering_every_event():
    campaigns = g.ysb_campaigns(seed=3)
    assert campaigns.columns == ["ad_id", "campaign_id"] and campaigns.height == 1000
    assert campaigns["ad_id"].n_unique() == 1000 and campaigns["campaign_id"].n_unique() == 100
    assert campaigns.group_by("campaign_id").len()["len"].unique().to_list() == [10]
    joined = g.ysb_events(5000, seed=3).join(campaigns, on="ad_id", how="left")
    assert joined["campaign_id"].null_count() == 0
    assert not campaigns.equals(g.ysb_campaigns(seed=4))


def test_campaigns_table_and_stream():
    schema = Schema.of(("ad_id", T.STRING), ("campaign_id", T.STRING))
    definition = SourceDef(
        "campaigns", "table", schema, (("connector", "generator"), ("kind", "ysb_campaigns"), ("seed", "1"))
    )
    table = g.make_table(definition)
    assert table.read().equals(g.ysb_campaigns(1))
    assert table.read(["campaign_id"]).columns == ["campaign_id"]
    batches = run(definition, 100)
    assert len(batches) == 1 and batches[0].frame.equals(g.ysb_campaigns(1))
    with pytest.raises(ConnectorError, match="use CREATE STREAM"):
        g.make_table(events(count=1))


# ------------------------------------------------------------------ realtime


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_realtime_paces_batches_to_the_wall_clock(monkeypatch):
    clock = ManualClock()
    monkeypatch.setattr(g, "_monotonic", clock.monotonic)
    monkeypatch.setattr(g, "_sleep", clock.sleep)
    src = g.make_source(events(rate=1000))
    src.open(None)
    src.next_batch(100, realtime=True)
    clock.now += 0.03  # the engine spent 30 ms on the batch
    src.next_batch(100, realtime=True)
    src.next_batch(100, realtime=False)  # returns at once
    assert clock.sleeps == [0.1, 0.07]
    clock.now += 0.5  # the clock is at 0.7 s: batches ending at 0.4 .. 0.7 s are due, no wait
    for _ in range(4):
        src.next_batch(100, realtime=True)
    assert clock.sleeps == [0.1, 0.07]
    src.next_batch(100, realtime=True)  # ends at 0.8 s
    assert clock.sleeps == [0.1, 0.07, 0.1]


def test_the_pacing_clock_starts_at_the_first_read_not_at_open(monkeypatch):
    """Set-up between open and the first read (a query's first task) does not make the first batches due at once:
    the bench measures latency from the first task, and counted from open it came out negative."""
    clock = ManualClock()
    monkeypatch.setattr(g, "_monotonic", clock.monotonic)
    monkeypatch.setattr(g, "_sleep", clock.sleep)
    src = g.make_source(events(rate=1000))
    src.open(None)
    clock.now += 0.25  # a slow start: workers, plans
    src.next_batch(100, realtime=True)
    src.next_batch(100, realtime=True)
    assert clock.sleeps == [0.1, 0.1]


def test_realtime_option_false_never_waits(monkeypatch):
    clock = ManualClock()
    monkeypatch.setattr(g, "_monotonic", clock.monotonic)
    monkeypatch.setattr(g, "_sleep", clock.sleep)
    src = g.make_source(events(rate=1000, realtime="false"))
    src.open(None)
    src.next_batch(100, realtime=True)
    assert clock.sleeps == []


# -------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "options, message",
    [
        ({"kind": "tpch"}, "kind = 'ysb' or 'ysb_campaigns', got 'tpch'"),
        ({"rate": "-1"}, "option rate must be a positive number"),
        ({"rate": "fast"}, "option rate must be a positive number"),
        ({"count": "lots"}, "option count must be an integer"),
        ({"start": "someday"}, "option start: invalid TIMESTAMP"),
        ({"format": "xml"}, "option format must be 'json' or 'columns'"),
        ({"rat": "5"}, "unknown option 'rat' (did you mean 'rate'"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ConnectorError) as info:
        g.make_source(events(**options))
    assert message in str(info.value)


def test_a_column_the_generator_does_not_produce_is_refused():
    with pytest.raises(ConnectorError, match="has no column 'price'"):
        g.make_source(events(Schema.of(("ad_id", T.STRING), ("price", T.DOUBLE))))
