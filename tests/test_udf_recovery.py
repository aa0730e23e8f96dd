"""A kill and recovery while Python UDFs run (issue 23): the output is exact.

The fault-tolerance tests' YSB query (tests/recovery_script.py), over a shorter stream, with its
filter and its count written as UDFs: a row-wise `is_view(event_type)` in
WHERE and an aggregate `tally(ad_id)` (init/update/merge/finish) in place
of COUNT(*). A worker is killed (SIGKILL) while the query runs; the
replacement gets the UDFs with its Setup, restores the aggregate UDF's
pickled state from the checkpoint, and the committed output equals the
plain query's result (COUNT(*), no UDFs) on the inline executor without failures.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Iterator

import pytest

import recovery_script as R
import stream_dsl as sd
from stream_dsl.ir import udfs
from test_recovery import HANG_GUARD_S, alive, assert_exact, finish, normalized, position, recovered, wait_until

RATE, BATCHES = 3000, 120  # a smaller run than test_recovery's: 300 events per 100 ms batch
DDL = R.DDL.replace(f"rate = '{R.RATE}', count = '{R.COUNT}'", f"rate = '{RATE}', count = '{RATE * BATCHES // 10}'")
PLAIN = R.SELECT  # the oracle: the same query without UDFs, on the inline executor, without failures
QUERY = """INSERT INTO out
SELECT campaign_id, window_start, window_end, tally(ad_id) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE is_view(event_type)
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '1' SECOND)
EMIT ON WINDOW CLOSE"""


def context(sink_dir: Path | None, **options: Any) -> sd.Context:
    settings: dict[str, Any] = {"workers": 2, "executor": "drizzle", "group_size": 5, "batch_interval": "100ms"}
    ctx = sd.Context(**(settings | options))
    ctx.sql(DDL)
    if sink_dir is not None:
        ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{sink_dir}', format = 'parquet')")
    ctx.register_function("is_view", is_view, returns="BOOLEAN")
    ctx.register_aggregate("tally", Tally, returns="BIGINT")
    return ctx


def is_view(event_type: str) -> bool:
    return event_type == "view"


class Tally:
    """How many non-NULL values."""

    def init(self) -> int:
        return 0

    def update(self, state: int, value: object) -> int:
        return state + 1

    def merge(self, a: int, b: int) -> int:
        return a + b

    def finish(self, state: int) -> int:
        return state


@pytest.fixture(autouse=True)
def forget_udfs() -> Iterator[None]:
    """UDF names are global to the process (stream_dsl/ir/udfs.py): leave none behind for other tests."""
    yield
    udfs.unregister("is_view")
    udfs.unregister("tally")


@pytest.mark.parametrize("executor", ["drizzle", pytest.param("bsp", marks=pytest.mark.slow)])
def test_a_killed_worker_recovers_udfs_and_their_state_exactly(tmp_path, executor):
    expected = normalized(context(None, executor="inline", workers=1).sql(PLAIN).collect())
    assert expected.height == BATCHES // 10 * 100  # a window per second of event time, 100 campaigns
    handle = context(tmp_path / "out", executor=executor, checkpoint_dir=str(tmp_path / "ckpt")).sql(QUERY)
    seen = set(handle.worker_pids())
    try:
        wait_until(lambda: position(handle) >= BATCHES // 3 or not handle.is_active, "a third of the batches")
        assert handle.is_active, "the query ended before the kill"
        pids = handle.worker_pids()
        os.kill(pids[0], signal.SIGKILL)
        wait_until(recovered(handle, 1), "the recovery")
        seen.update(handle.worker_pids())
        finish(handle)
    finally:
        handle.stop(HANG_GUARD_S)
    assert len(handle.recoveries) == 1
    assert_exact(tmp_path / "out", expected)
    wait_until(lambda: not any(alive(p) for p in seen), "every worker process to exit after the query")
