"""CUMULATE windows and window table functions (issue 20) against DuckDB, on every executor.

Windows become epoch-ms arithmetic in DuckDB, as in tests/test_differential.py:
cumulate = the start ts - ts % max_size and an unnest of the window ends
from the row's step end up to start + max_size; hop = an unnest of the
window starts. The TVF forms must give the same rows as the GROUP BY forms
(and, grouped by window_start and window_end, the very same plan); the
TVF without aggregation is each row once per window, window_time =
window_end - 1 ms. Hypothesis data, random micro-batch splits, 1 and 3
workers, the optimizer on and off; the drizzle and bsp executors run a few
examples each.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from executor.api import collect
from stream_dsl.config import RunConfig
from budget import examples
from test_differential import Q, assert_same_rows, datasets, duckdb_rows, engine

CUMULATE_2_10 = "CUMULATE(TABLE s, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)"


def cumulate(step: int, size: int, select: str, group: str, where: str = "") -> str:
    """DuckDB: every row once per cumulating window [ws, we) that holds it; {ws}, {we}, {wt} in `select`."""
    return (
        f"WITH w AS (SELECT *, epoch_ms(ts) - epoch_ms(ts) % {size} AS ws, "
        f"unnest(range(epoch_ms(ts) - epoch_ms(ts) % {step} + {step}, "
        f"epoch_ms(ts) - epoch_ms(ts) % {size} + {size} + 1, {step})) AS we FROM s {where}) "
        f"SELECT {select.format(ws='epoch_ms(ws)', we='epoch_ms(we)', wt='epoch_ms(we - 1)')} FROM w"
        + (f" GROUP BY {group}" if group else "")
    )


def hop(slide: int, size: int, select: str, group: str, where: str = "") -> str:
    return (
        f"WITH w AS (SELECT *, unnest(range(epoch_ms(ts) - epoch_ms(ts) % {slide}, epoch_ms(ts) - {size}, "
        f"-{slide})) AS ws FROM s {where}) "
        f"SELECT {select.format(ws='epoch_ms(ws)', we=f'epoch_ms(ws + {size})', wt=f'epoch_ms(ws + {size} - 1)')} "
        "FROM w" + (f" GROUP BY {group}" if group else "")
    )


SESSION_DUCK = (
    "WITH e AS (SELECT *, epoch_ms(ts) AS t, row_number() OVER () AS rn FROM s), "
    "f AS (SELECT *, CASE WHEN t - LAG(t) OVER (PARTITION BY k ORDER BY t, rn) < 3000 THEN 0 ELSE 1 END AS brk "
    "FROM e), g AS (SELECT *, SUM(brk) OVER (PARTITION BY k ORDER BY t, rn ROWS UNBOUNDED PRECEDING) AS sid "
    "FROM f) "
    "SELECT epoch_ms(MIN(t)) AS window_start, epoch_ms(MAX(t) + 3000) AS window_end, k, COUNT(*) AS n "
    "FROM g GROUP BY k, sid"
)

QUERIES = [
    Q(
        "cumulate_group_by",
        "SELECT k, window_start, window_end, COUNT(*) AS n, SUM(i) AS si, MAX(d) AS md FROM s "
        "GROUP BY k, CUMULATE(ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND)",
        cumulate(2000, 10_000, "k, {ws}, {we}, COUNT(*), SUM(i), MAX(d)", "k, ws, we"),
    ),
    Q(
        "cumulate_group_by_no_keys_emit_changes",
        "SELECT window_end, COUNT(*) AS n FROM s WHERE i > 0 "
        "GROUP BY CUMULATE(ts, INTERVAL '1' SECOND, INTERVAL '3' SECOND) EMIT CHANGES",
        cumulate(1000, 3000, "{we}, COUNT(*)", "ws, we", where="WHERE i > 0"),
    ),
    Q(
        "cumulate_tvf_aggregate",
        f"SELECT window_start, window_end, k, COUNT(*) AS n, SUM(i) AS si, MAX(d) AS md FROM TABLE({CUMULATE_2_10}) "
        "GROUP BY window_start, window_end, k",
        cumulate(2000, 10_000, "{ws}, {we}, k, COUNT(*), SUM(i), MAX(d)", "k, ws, we"),
    ),
    Q(
        "cumulate_tvf_rows",
        "SELECT k, i, ts, window_start, window_end, window_time FROM TABLE(CUMULATE(TABLE s, DESCRIPTOR(ts), "
        "INTERVAL '5' SECOND, INTERVAL '15' SECOND)) WHERE i IS NOT NULL",
        cumulate(5000, 15_000, "k, i, ts, {ws}, {we}, {wt}", "", where="WHERE i IS NOT NULL"),
    ),
    Q(
        "tumble_tvf_aggregate_window_time_having",
        "SELECT window_start, window_time, k, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), "
        "INTERVAL '10' SECOND)) AS w GROUP BY w.window_start, w.window_end, k HAVING COUNT(*) > 1",
        "SELECT epoch_ms(ws), epoch_ms(ws + 9999), k, COUNT(*) FROM (SELECT *, epoch_ms(ts) - epoch_ms(ts) % 10000 "
        "AS ws FROM s) GROUP BY k, ws HAVING COUNT(*) > 1",
    ),
    Q(
        "tumble_tvf_rows",
        "SELECT k, ts, window_start, window_end, window_time FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), "
        "INTERVAL '7' SECOND))",
        "SELECT k, ts, epoch_ms(ws), epoch_ms(ws + 7000), epoch_ms(ws + 6999) FROM (SELECT *, "
        "epoch_ms(ts) - epoch_ms(ts) % 7000 AS ws FROM s)",
    ),
    Q(
        "hop_tvf_aggregate_named_arguments",
        "SELECT k, window_start, window_end, COUNT(*) AS n, AVG(d) AS ad FROM TABLE(HOP(DATA => TABLE s, "
        "TIMECOL => DESCRIPTOR(ts), SIZE => INTERVAL '15' SECOND, SLIDE => INTERVAL '5' SECOND)) "
        "GROUP BY window_start, window_end, k",
        hop(5000, 15_000, "k, {ws}, {we}, COUNT(*), AVG(d)", "k, ws"),
    ),
    Q(
        "hop_tvf_rows",
        "SELECT k, i, window_start, window_end, window_time FROM TABLE(HOP(TABLE s, DESCRIPTOR(ts), "
        "INTERVAL '4' SECOND, INTERVAL '10' SECOND))",
        hop(4000, 10_000, "k, i, {ws}, {we}, {wt}", ""),
    ),
    Q(
        "hop_tvf_rows_grouped_by_key_only",
        "SELECT k, COUNT(*) AS n, MIN(window_start) AS first FROM TABLE(HOP(TABLE s, DESCRIPTOR(ts), "
        "INTERVAL '5' SECOND, INTERVAL '10' SECOND)) GROUP BY k",
        hop(5000, 10_000, "k, COUNT(*), MIN({ws})", "k"),
    ),
    Q(
        "session_tvf_aggregate_partitioned",
        "SELECT window_start, window_end, k, COUNT(*) AS n FROM TABLE(SESSION(TABLE s PARTITION BY k, "
        "DESCRIPTOR(ts), INTERVAL '3' SECOND)) GROUP BY window_start, window_end, k",
        SESSION_DUCK,
    ),
    Q(
        "tumble_tvf_over_a_subquery",
        "SELECT window_start, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE (SELECT ts FROM s WHERE i > 0), "
        "DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY window_start, window_end",
        "SELECT epoch_ms(ws), COUNT(*) FROM (SELECT epoch_ms(ts) - epoch_ms(ts) % 5000 AS ws FROM s WHERE i > 0) "
        "GROUP BY ws",
    ),
]


def check(query: Q, data, executor: str, runs) -> None:
    frame, batches, table, ordered = data
    plan = engine(batches, table, ordered).sql(query.dsl).plan
    expected = duckdb_rows(query.duck, frame, table)
    for workers, optimize in runs:
        result = collect(plan, RunConfig(workers=workers, executor=executor, optimize=optimize))
        assert result.columns == list(plan.schema.names)
        context = f"{query.name} {executor} workers={workers} optimize={optimize} batches={len(batches)}"
        assert_same_rows(result.rows(), expected, context)


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_windows_and_window_tvfs_match_duckdb_inline(query, data):
    check(query, data, "inline", ((1, True), (3, True), (3, False)))


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
@settings(max_examples=examples(1), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_windows_and_window_tvfs_match_duckdb_on_the_process_executors(query, executor, data):
    check(query, data, executor, ((2, True), (2, False)))
