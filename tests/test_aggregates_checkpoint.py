"""The new aggregates' state survives checkpoints: stopped twice midway and restarted, the output is exact.

The recovery tests' bounded YSB stream (tests/recovery_script.py) with a
TUMBLE aggregate over the list-, set- and (n, mean, M2)-valued states of
`executor/state/aggregate_more.py`. The sink's committed output after two
stops and restarts from checkpoints must be the uninterrupted inline run's,
every (campaign, window) exactly once. The generator makes about ten
events per millisecond, and rows of equal event time arrive in any order
across workers, so the ordered aggregates here take values equal on ties
(the event time itself); the variance matches within rounding (the workers
merge partial states in another order than one inline worker).
"""

from __future__ import annotations

import math

import polars as pl
import pytest

import recovery_script as R
from stream_dsl.connectors import files
from test_recovery import HANG_GUARD_S, finish, stop_midway

SELECT = """SELECT campaign_id, window_start, window_end, COUNT(*) AS views,
  STDDEV_POP(epoch_ms(event_time) % 1000) AS spread, VAR_SAMP(epoch_ms(event_time) % 97) AS var,
  APPROX_COUNT_DISTINCT(user_id) AS users, MEDIAN(epoch_ms(event_time) % 1000) AS med,
  APPROX_PERCENTILE(epoch_ms(event_time) % 1000, 0.9) AS p90,
  FIRST_VALUE(event_time) AS first_at, LAST_VALUE(event_time) AS last_at,
  ARRAY_AGG(epoch_ms(event_time) % 1000) AS offsets, STRING_AGG(CAST(epoch_ms(event_time) AS STRING), ' ') AS times
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '1' SECOND)"""
BATCHES = 120  # a shorter stream than the recovery tests': two restarts from checkpoints still fall inside it
KEYS = ["campaign_id", "window_start", "window_end"]
FLOATS = ("spread", "var", "med", "p90")


def _normalized(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("campaign_id").cast(pl.String),
        pl.col("window_start").cast(pl.Datetime("ms")),
        pl.col("window_end").cast(pl.Datetime("ms")),
    ).sort(KEYS)


def assert_exact(out: pl.DataFrame, expected: pl.DataFrame) -> None:
    assert out.columns == expected.columns and out.height == expected.height
    exact = [c for c in out.columns if c not in FLOATS]
    assert out.select(exact).equals(expected.select(exact))
    for column in FLOATS:
        for a, b in zip(out.get_column(column).to_list(), expected.get_column(column).to_list()):
            assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (column, a, b)


@pytest.mark.parametrize("executor", ["drizzle", pytest.param("bsp", marks=pytest.mark.slow)])
def test_new_aggregate_state_is_exact_after_two_restarts_from_checkpoints(tmp_path, executor):
    expected = _normalized(R.make_context(None, batches=BATCHES, executor="inline", workers=1).sql(SELECT).collect())
    assert expected.height == BATCHES // 10 * 100  # a window per second of event time, 100 campaigns
    assert expected.get_column("offsets").list.len().equals(expected.get_column("views").cast(pl.UInt32))
    options = {"executor": executor, "group_size": 7, "checkpoint_dir": str(tmp_path / "ckpt")}
    restored = []
    for _ in range(2):
        handle = R.make_context(tmp_path / "out", batches=BATCHES, **options).sql(f"INSERT INTO out {SELECT}")
        stop_midway(handle, tmp_path / "ckpt", len(restored) + 2)
        handle = R.make_context(tmp_path / "out", batches=BATCHES, **options).sql(f"INSERT INTO out {SELECT}")
        restored.append(handle.restored_checkpoint)
        if len(restored) == 1:
            handle.stop(HANG_GUARD_S)
    finish(handle)
    assert all(r is not None for r in restored), restored
    out = files.read_committed(str(tmp_path / "out"))
    assert out.group_by(KEYS).len().filter(pl.col("len") > 1).height == 0, "a window written twice"
    assert_exact(_normalized(out), expected)
