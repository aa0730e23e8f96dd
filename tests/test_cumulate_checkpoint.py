"""CUMULATE state survives checkpoints: stopped twice midway and restarted, the output is exact.

The recovery tests' bounded YSB stream (tests/recovery_script.py) with a
CUMULATE aggregate instead of TUMBLE: views per campaign in windows that
grow by 1 s up to 2 s. The sink's committed output after two stops and
restarts from checkpoints must be the uninterrupted inline run's, every
(campaign, window_start, window_end) exactly once.
"""

from __future__ import annotations

import polars as pl
import pytest

import recovery_script as R
from stream_dsl.connectors import files
from test_recovery import HANG_GUARD_S, finish, stop_midway

SELECT = """SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, CUMULATE(event_time, INTERVAL '1' SECOND, INTERVAL '2' SECOND)"""
KEYS = ["campaign_id", "window_start", "window_end"]


def _normalized(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("campaign_id").cast(pl.String),
        pl.col("window_start").cast(pl.Datetime("ms")),
        pl.col("window_end").cast(pl.Datetime("ms")),
        pl.col("views").cast(pl.Int64),
    ).sort(KEYS)


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_cumulate_state_is_exact_after_two_restarts_from_checkpoints(tmp_path, executor):
    expected = _normalized(R.make_context(None, executor="inline", workers=1).sql(SELECT).collect())
    assert expected.height == R.BATCHES // 10 * 100  # two windows per 2 s of event time, 100 campaigns
    options = {"executor": executor, "group_size": 7, "checkpoint_dir": str(tmp_path / "ckpt")}
    restored = []
    for _ in range(2):
        handle = R.make_context(tmp_path / "out", **options).sql(f"INSERT INTO out {SELECT}")
        stop_midway(handle, tmp_path / "ckpt", len(restored) + 2)
        handle = R.make_context(tmp_path / "out", **options).sql(f"INSERT INTO out {SELECT}")
        restored.append(handle.restored_checkpoint)
        if len(restored) == 1:
            handle.stop(HANG_GUARD_S)
    finish(handle)
    assert all(r is not None for r in restored), restored
    out = files.read_committed(str(tmp_path / "out"))
    assert out.group_by(KEYS).len().filter(pl.col("len") > 1).height == 0, "a window written twice"
    assert _normalized(out).equals(expected)
