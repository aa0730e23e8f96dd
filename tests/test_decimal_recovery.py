"""A DECIMAL SUM survives a killed worker exactly: its state is checkpointed and restored as DECIMAL(38, s).

The fault-tolerance tests' YSB stream (tests/recovery_script.py), with a
DECIMAL amount per event summed per campaign and window; a worker is
killed midway and the committed output must equal the run without failures,
digit for digit.
"""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import polars as pl

import recovery_script as R
from stream_dsl.connectors import files
from test_recovery import HANG_GUARD_S, position, recovered, wait_until

BATCHES = 120
SELECT = R.SELECT.replace(
    "COUNT(*) AS views",
    "COUNT(*) AS views, SUM(CAST(length(ip_address) AS DECIMAL(12, 3)) * CAST('1.001' AS DECIMAL(4, 3))) AS amount",
)
KEYS = ["campaign_id", "window_start"]


def rows(frame: pl.DataFrame) -> list[tuple]:
    return (
        frame.select(pl.col("campaign_id").cast(pl.String), pl.col("window_start"), "views", "amount").sort(KEYS).rows()
    )


def test_a_decimal_sum_is_exact_after_a_worker_is_killed(tmp_path):
    reference = R.make_context(None, batches=BATCHES, executor="inline", workers=1).sql(SELECT).collect()
    assert reference.schema["amount"] == pl.Decimal(38, 6)
    assert all(isinstance(v, Decimal) for v in reference.get_column("amount").to_list())
    ctx = R.make_context(tmp_path / "out", batches=BATCHES, checkpoint_dir=str(tmp_path / "ckpt"))
    handle = ctx.sql(f"INSERT INTO out {SELECT}")
    try:
        wait_until(lambda: position(handle) >= BATCHES // 2 or not handle.is_active, "half of the batches")
        assert handle.is_active, "the query ended before the kill"
        os.kill(handle.worker_pids()[0], signal.SIGKILL)
        wait_until(recovered(handle, 1), "the recovery")
        assert handle.await_termination(HANG_GUARD_S)
    finally:
        handle.stop(HANG_GUARD_S)
    assert len(handle.recoveries) == 1
    assert handle.recoveries[0]["checkpoint"] is not None, "the worker was killed before the first checkpoint"
    out = files.read_committed(str(tmp_path / "out"))
    assert out.schema["amount"] == pl.Decimal(38, 6)
    assert rows(out) == rows(reference)
