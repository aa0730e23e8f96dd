"""Kill-and-recover with a changelog output: workers killed while an aggregate over an aggregate runs.

The recovery tests' bounded YSB stream (tests/recovery_script.py) feeds
`SELECT campaigns FROM (SELECT views, COUNT(*) AS campaigns FROM (views per
campaign) GROUP BY views)`: the inner aggregate emits -old/+new rows, the
outer one keeps its groups from them, and the projection that drops its key
makes the output retractions too. Worker processes are killed (SIGKILL)
while it runs with a checkpoint directory; the memory sink keeps each
batch's rows by batch id (a replayed batch replaces its rows). Then the
changelog, replayed row by row in batch order, must never remove a row it
does not hold, and must end as the inline executor's collect() without failures.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import pytest

import recovery_script as R
from stream_dsl.connectors.memory import MemorySink
from test_recovery import HANG_GUARD_S, finish, position, recovered, wait_until

INNER = (
    "SELECT campaign_id, COUNT(*) AS views FROM events JOIN campaigns USING (ad_id) "
    "WHERE event_type = 'view' GROUP BY campaign_id"
)
QUERY = f"SELECT campaigns FROM (SELECT views, COUNT(*) AS campaigns FROM ({INNER}) AS v GROUP BY views) AS c"


BATCHES = 120  # a shorter stream than the recovery tests': two kills and a restart still fall inside it


def expected_counts() -> Counter:
    """The result without failures, on the inline executor."""
    ctx = R.make_context(None, batches=BATCHES, executor="inline", workers=1)
    return Counter(ctx.sql(QUERY).collect()["campaigns"].to_list())


def replayed(sink: MemorySink) -> Counter:
    live: Counter = Counter()
    for batch, frame in sink.batches.items():
        assert "op" in frame.columns, f"batch {batch} has no operations"  # insert/delete records
        signs = [{"insert": 1, "delete": -1}[op] for op in frame.get_column("op").to_list()]
        for value, op in zip(frame.get_column("campaigns").to_list(), signs):
            if op == -1:
                assert live[value] > 0, f"batch {batch} removes {value}, which no earlier row added"
            live[value] += op
    return +live


@pytest.mark.parametrize("executor, kills", [("drizzle", 2), pytest.param("bsp", 1, marks=pytest.mark.slow)])
def test_killed_workers_leave_an_exact_changelog(tmp_path, executor, kills):
    expected = expected_counts()
    rng = random.Random(executor)
    sink = MemorySink()
    ctx = R.make_context(None, batches=BATCHES, executor=executor, group_size=5)
    handle = ctx.sql(QUERY).start(sink=sink, checkpoint_dir=str(tmp_path / "ckpt"))
    killed = 0
    try:
        for k in range(kills):
            threshold = BATCHES // 5 + k * BATCHES // 4 + rng.randrange(20)
            wait_until(lambda: position(handle) >= threshold or not handle.is_active, f"batch {threshold}")
            time.sleep(rng.uniform(0.0, 0.05))
            if not handle.is_active:
                break
            pids = handle.worker_pids()
            os.kill(pids[rng.randrange(len(pids))], signal.SIGKILL)
            killed += 1
            wait_until(recovered(handle, killed), f"recovery {killed}")
        finish(handle)
    finally:
        handle.stop(HANG_GUARD_S)
        ctx.close()
    assert killed == kills, "the query ended before every kill"
    assert len(handle.recoveries) == kills
    assert replayed(sink) == expected
    assert sum(value * n for value, n in expected.items()) == 100  # per view count, its campaigns: 100 in all


@pytest.mark.slow
def test_inline_resumes_a_changelog_from_its_checkpoint_after_a_stop(tmp_path):
    """Stopped midway and started again on the same checkpoint directory: the changelog goes on exactly."""
    expected = expected_counts()
    sink_id = f"clog-{tmp_path.name}"
    checkpoints = str(tmp_path / "ckpt")
    first = (
        R.make_context(None, batches=BATCHES, executor="inline", group_size=5)
        .sql(QUERY)
        .start(sink=MemorySink(sink_id), checkpoint_dir=checkpoints)
    )
    try:
        wait_until(lambda: position(first) >= BATCHES // 3 or not first.is_active, "a third of the batches")
    finally:
        first.stop(HANG_GUARD_S)
    handle = (
        R.make_context(None, batches=BATCHES, executor="inline", group_size=5)
        .sql(QUERY)
        .start(sink=MemorySink(sink_id), checkpoint_dir=checkpoints)
    )
    finish(handle)
    assert handle.restored_checkpoint is not None
    assert replayed(MemorySink(sink_id)) == expected
