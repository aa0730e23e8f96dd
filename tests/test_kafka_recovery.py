"""Exactly once from Kafka to Kafka (and to files) across killed workers and a killed driver, on the real broker.

The query is tests/kafka_recovery_script.py's YSB over 1-second windows, from
a topic of 3 partitions filled before it starts (a bounded source, so the
run ends). The expected output is plain polars over the same events.
Timeouts only keep a broken run from hanging; no test measures time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import kafka_recovery_script as K
from kafka_broker import KafkaBroker, start_broker, stop_broker
from stream_dsl.connectors import files
from stream_dsl.connectors.generator import events_as_json, ysb_campaigns, ysb_events
from stream_dsl.connectors.kafka.sink import committed_markers, marker_topic_for, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HANG_GUARD_S = 120.0
KEYS = ["campaign_id", "window_start", "window_end"]
EVENTS = 9_000  # 90 seconds of event time at 100 events a second: 36 source batches of 250


@pytest.fixture(scope="module")
def broker():
    srv = start_broker()
    yield srv
    stop_broker(srv)


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    return ysb_events(EVENTS, seed=K.SEED, rate=100)


def expected(events: pl.DataFrame) -> pl.DataFrame:
    views = events.filter(pl.col("event_type") == "view").join(ysb_campaigns(K.SEED), on="ad_id")
    return (
        views.with_columns(window_start=pl.col("event_time").dt.truncate("1s"))
        .with_columns(window_end=pl.col("window_start") + pl.duration(seconds=1))
        .group_by(KEYS)
        .agg(pl.len().cast(pl.Int64).alias("views"))
        .sort(KEYS)
    )


def normalized(frame: pl.DataFrame) -> pl.DataFrame:
    for c in ("window_start", "window_end"):
        if frame.schema[c] == pl.String:
            frame = frame.with_columns(pl.col(c).str.to_datetime(time_unit="ms"))
    return (
        frame.with_columns(pl.col(c).cast(pl.Datetime("ms")) for c in ("window_start", "window_end"))
        .with_columns(pl.col("views").cast(pl.Int64))
        .select(KEYS + ["views"])
        .sort(KEYS)
    )


def assert_exact(out: pl.DataFrame, events: pl.DataFrame) -> None:
    assert out.height, "nothing written"
    repeated = out.group_by(KEYS).len().filter(pl.col("len") > 1)
    assert repeated.height == 0, f"{repeated.height} windows written more than once"
    got, want = normalized(out), expected(events)
    if not got.equals(want):
        missing = want.join(got, on=KEYS + ["views"], how="anti")
        extra = got.join(want, on=KEYS + ["views"], how="anti")
        raise AssertionError(
            f"{got.height} windows, expected {want.height}: {missing.height} missing "
            f"(e.g. {missing.head(3).rows()}), {extra.height} not expected "
            f"(e.g. {extra.head(3).rows()})"
        )


def sink_output(broker: KafkaBroker, sink: str) -> pl.DataFrame:
    kind, _, where = sink.partition(":")
    if kind == "kafka":
        return pl.DataFrame(read_topic(broker.bootstrap, where))
    return files.read_committed(where)


def fill(broker: KafkaBroker, topic: str, events: pl.DataFrame) -> None:
    broker.create_topic(topic, 3)
    broker.produce(topic, events_as_json(events).splitlines())


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


@pytest.mark.parametrize(("sink", "splits"), [("kafka", "workers"), ("files", "1")])
def test_killed_workers_are_replaced_and_the_output_is_exact(broker, events, tmp_path, sink, splits):
    """A killed worker's tasks go elsewhere; read in one part per worker, the killed worker's part is reopened
    on another worker at its checkpointed offsets."""
    topic = f"kw-{sink}"
    fill(broker, topic, events)
    target = f"kafka:{topic}-out" if sink == "kafka" else f"files:{tmp_path / 'out'}"
    if sink == "kafka":
        broker.create_topic(f"{topic}-out", 2)
    ctx = K.make_context(broker.bootstrap, topic, target, splits=splits, checkpoint_dir=str(tmp_path / "ckpt"))
    handle = ctx.sql(f"INSERT INTO out {K.SELECT}")
    rng = random.Random(5)
    try:
        for share in (0.25, 0.6):
            wait_until(
                lambda: sum(p["rows_in"] for p in handle.progress()) >= share * EVENTS or not handle.is_active,
                f"{share:.0%} of the events read",
            )
            if handle.is_active and handle.worker_pids():
                os.kill(rng.choice(handle.worker_pids()), signal.SIGKILL)
        assert handle.await_termination(HANG_GUARD_S)
    finally:
        handle.stop(HANG_GUARD_S)
    assert handle.exception is None
    assert len(handle.recoveries) >= 1, "no worker was killed mid-run (the run was too short)"
    assert_exact(sink_output(broker, target), events)


def _script(
    broker: KafkaBroker, tmp_path: Path, run: str, topic: str, sink: str, executor: str, splits: str
) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([K.ROOT, os.environ.get("PYTHONPATH", "")]))
    with open(tmp_path / f"{run}.stdout", "wb") as out, open(tmp_path / f"{run}.stderr", "wb") as err:
        return subprocess.Popen(
            [
                sys.executable,
                K.__file__,
                broker.bootstrap,
                topic,
                str(tmp_path / "ckpt"),
                sink,
                "--pids",
                str(tmp_path / "pids.json"),
                "--executor",
                executor,
                "--splits",
                splits,
            ],
            cwd=K.ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.parametrize(("executor", "splits"), [("drizzle", "workers")])
def test_a_killed_driver_resumes_from_its_checkpoint_and_the_kafka_output_is_exact(
    broker, events, tmp_path, executor, splits
):
    """Read in one part per worker: every part resumes at its own checkpointed offsets."""
    topic = f"kd-{executor}"
    fill(broker, topic, events)
    broker.create_topic(f"{topic}-out", 2)
    sink = f"kafka:{topic}-out"
    first = _script(broker, tmp_path, "first", topic, sink, executor, splits)
    try:
        # a checkpoint is committed after its group's batches are in the sink
        wait_until(
            lambda: (
                first.poll() is not None
                or (
                    (tmp_path / "pids.json").exists()
                    and any((tmp_path / "ckpt" / "checkpoints").glob("ckpt-*/manifest.json"))
                )
            ),
            "a checkpoint",
        )
        assert first.poll() is None, (tmp_path / "first.stderr").read_text()[-3000:]
        workers = json.loads((tmp_path / "pids.json").read_text())
        os.kill(first.pid, signal.SIGKILL)
        first.wait(HANG_GUARD_S)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(HANG_GUARD_S)
    assert (tmp_path / "first.stdout").read_text() == "", "the first run ended before it was killed"
    wait_until(lambda: not any(_alive(p) for p in workers), "the killed driver's workers to exit")
    second = _script(broker, tmp_path, "second", topic, sink, executor, splits)
    try:
        assert second.wait(HANG_GUARD_S) == 0, (tmp_path / "second.stderr").read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(HANG_GUARD_S)
    assert committed_markers(broker.bootstrap, marker_topic_for(f"{topic}-out")), "the first run wrote nothing"
    summary = json.loads((tmp_path / "second.stdout").read_text().strip().splitlines()[-1])
    assert summary["restored_checkpoint"] is not None and summary["first_batch"] > 0, summary
    assert_exact(sink_output(broker, sink), events)
