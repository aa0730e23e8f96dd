"""CUMULATE batch by batch, window TVFs bound to the GROUP BY form's plan, and their positioned errors.

The watermark tests feed hand-made batches (times in seconds after
2024-01-01) as tests/test_watermarks.py does and read what the sink got
per batch id and the late rows progress() counted.
"""

from __future__ import annotations

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.errors import BindError, ParseError
from test_watermarks import at, batch, context, run

CUMULATE = (
    "SELECT k, window_start, window_end, COUNT(*) AS n FROM ev "
    "GROUP BY k, CUMULATE(ts, INTERVAL '2' SECOND, INTERVAL '6' SECOND)"
)


# ---------------------------------------------------------------- CUMULATE, when each window is emitted


def test_each_cumulating_window_is_emitted_when_the_watermark_passes_its_own_end():
    ctx = context(batch(("a", 1)), batch(("a", 3)), batch(("a", 4.5)), batch(("a", 7)), batch(("b", 20)))
    out, progress = run(ctx, CUMULATE)
    # watermark 3 closes [0,2); 4.5 closes [0,4); 7 closes [0,6); 20 closes [6,8) .. [6,12); the end flushes b's
    assert out[1] == [("a", 0, 2, 1)]
    assert out[2] == [("a", 0, 4, 2)]
    assert out[3] == [("a", 0, 6, 3)]
    assert out[4] == [("a", 6, 8, 1), ("a", 6, 10, 1), ("a", 6, 12, 1), ("b", 18, 22, 1), ("b", 18, 24, 1)]
    assert [p["late_rows"] for p in progress] == [0, 0, 0, 0, 0]


def test_a_cumulate_row_is_late_once_its_smallest_window_closed_and_still_feeds_the_open_ones():
    # watermark 4.5 after batch 1: the row at 1 has windows [0,2) and [0,4) closed, [0,6) open: late, counted
    # once, and counted in [0,6). The row at 0.5 in batch 3 (watermark 8) has every window closed: late, dropped.
    ctx = context(batch(("a", 3)), batch(("a", 4.5)), batch(("a", 1)), batch(("a", 8)), batch(("a", 0.5)))
    out, progress = run(ctx, CUMULATE)
    assert [p["late_rows"] for p in progress] == [0, 0, 1, 0, 1]
    assert out[1] == [("a", 0, 4, 1)]
    assert out[3] == [("a", 0, 6, 3)]
    assert all(row[1:3] != (0, 6) or row[3] == 3 for rows in out.values() for row in rows)


def test_cumulate_without_a_watermark_emits_every_window_at_the_end():
    ctx = context(batch(("a", 1), ("b", 5.5)), batch(("a", 5)), delay=None)
    out, _ = run(ctx, CUMULATE)
    assert out == {1: [("a", 0, 2, 1), ("a", 0, 4, 1), ("a", 0, 6, 2), ("b", 0, 6, 1)]}


@pytest.mark.parametrize("workers", [1, 3])
def test_cumulate_state_on_the_polars_path_agrees_with_the_small_state_path(workers):
    """Batches past state_small's limit go through the polars kernels; both give the enumerated windows."""
    rows = [("k" + str(i % 7), (i * 37 % 6000) / 1000) for i in range(3000)]
    small = context(*(batch(*rows[i : i + 30]) for i in range(0, 3000, 30)), workers=workers, delay=None)
    large = context(batch(*rows[:1500]), batch(*rows[1500:]), workers=workers, delay=None)
    expected: dict[tuple, int] = {}
    for k, t in rows:  # the windows by enumeration: start t // 6 * 6, ends every 2 s from t's step up to start + 6
        start = t // 6 * 6
        for end in range(int(t // 2 * 2) + 2, int(start) + 7, 2):
            expected[(k, start, end)] = expected.get((k, start, end), 0) + 1
    wanted = sorted(key + (n,) for key, n in expected.items())
    assert sorted(r for rows in run(small, CUMULATE)[0].values() for r in rows) == wanted
    assert sorted(r for rows in run(large, CUMULATE)[0].values() for r in rows) == wanted


# ---------------------------------------------------------------- the TVF form is the GROUP BY form


def _ctx() -> sd.Context:
    ctx = sd.Context()
    ctx.from_polars(
        pl.DataFrame({"k": ["a"], "j": [1], "ts": [at(1)]}, schema={"k": pl.String, "j": pl.Int64, "ts": pl.Datetime}),
        name="ev",
        watermark="ts",
        watermark_delay="1s",
    )
    return ctx


SAME = [
    (
        "SELECT window_start, window_end, k, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), "
        "INTERVAL '10' SECOND)) GROUP BY window_start, window_end, k",
        "SELECT window_start, window_end, k, COUNT(*) AS n FROM ev GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)",
    ),
    (
        "SELECT k, window_end, SUM(j) AS s FROM TABLE(HOP(TABLE ev, DESCRIPTOR(ts), INTERVAL '5' SECOND, "
        "INTERVAL '10' SECOND)) AS w WHERE j > 0 GROUP BY k, w.window_start, w.window_end HAVING SUM(j) > 1 "
        "EMIT CHANGES",
        "SELECT k, window_end, SUM(j) AS s FROM ev AS w WHERE j > 0 GROUP BY k, HOP(ts, INTERVAL '5' SECOND, "
        "INTERVAL '10' SECOND) HAVING SUM(j) > 1 EMIT CHANGES",
    ),
    (
        "SELECT window_start, window_end, k, j, MAX(ts) AS last FROM TABLE(CUMULATE(DATA => TABLE ev, "
        "TIMECOL => DESCRIPTOR(ts), STEP => INTERVAL '1' SECOND, SIZE => INTERVAL '1' MINUTE)) "
        "GROUP BY window_start, window_end, k, j",
        "SELECT window_start, window_end, k, j, MAX(ts) AS last FROM ev "
        "GROUP BY k, j, CUMULATE(ts, INTERVAL '1' SECOND, INTERVAL '1' MINUTE)",
    ),
    (
        "SELECT window_start, window_end, k, COUNT(*) AS n FROM TABLE(SESSION(TABLE ev PARTITION BY k, "
        "DESCRIPTOR(ts), INTERVAL '30' SECOND)) GROUP BY window_start, window_end, k",
        "SELECT window_start, window_end, k, COUNT(*) AS n FROM ev GROUP BY k, SESSION(ts, INTERVAL '30' SECOND)",
    ),
    (
        "SELECT window_time, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
        "GROUP BY window_start, window_end",
        "SELECT window_end - INTERVAL '1' MILLISECOND AS window_time, COUNT(*) AS n FROM ev "
        "GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)",
    ),
]


@pytest.mark.parametrize("tvf, group_by", SAME)
def test_a_tvf_grouped_by_its_windows_has_the_group_by_forms_plan(tvf, group_by):
    ctx = _ctx()
    ours, theirs = ctx.sql(tvf), ctx.sql(group_by)
    assert ours.plan == theirs.plan
    assert ours.explain() == theirs.explain()


def test_a_tvf_without_aggregation_adds_the_window_columns_to_the_tables():
    q = _ctx().sql("SELECT * FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '10' SECOND))")
    assert q.columns == ["k", "j", "ts", "window_start", "window_end", "window_time"]
    assert q.collect().row(0)[3:] == (at(0), at(10), at(9.999))


# ---------------------------------------------------------------- positioned errors


def _error(sql: str) -> BindError | ParseError:
    with pytest.raises((BindError, ParseError)) as info:
        _ctx().sql(sql)
    return info.value


@pytest.mark.parametrize(
    "sql, message, at",
    [
        (
            "SELECT COUNT(*) FROM ev GROUP BY CUMULATE(ts, INTERVAL '2' SECOND, INTERVAL '5' SECOND)",
            "the CUMULATE max size (5000ms) must be a multiple of its step (2000ms)",
            "INTERVAL '5' SECOND",
        ),
        (
            "SELECT COUNT(*) FROM ev GROUP BY CUMULATE(ts, INTERVAL '2' SECOND)",
            "CUMULATE takes 3 arguments: CUMULATE(time_column, INTERVAL ..., INTERVAL ...)",
            "CUMULATE(",
        ),
        (
            "SELECT * FROM TABLE(SESSION(TABLE ev PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' SECOND))",
            "SESSION(TABLE ...) needs an aggregation (GROUP BY window_start, window_end, ...): a session ends only "
            "when no row comes for a gap, so no row can be emitted with its session's bounds",
            "TABLE(SESSION",
        ),
        (
            "SELECT COUNT(*) FROM TABLE(SESSION(TABLE ev, DESCRIPTOR(ts), INTERVAL '1' SECOND)) "
            "GROUP BY window_start, window_end, k",
            "a SESSION table function's sessions are per its PARTITION BY keys (nothing), so GROUP BY "
            "window_start, window_end and exactly those keys",
            "TABLE(SESSION",
        ),
        (
            "SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '1' SECOND)) "
            "WHERE window_start > TIMESTAMP '2024-01-01' GROUP BY window_start, window_end",
            "WHERE cannot use window_start, window_end or window_time of a windowed aggregate: filter the windows "
            "in HAVING",
            "window_start >",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(k), INTERVAL '1' SECOND))",
            "the first argument of TUMBLE must be a TIMESTAMP column; 'k' is STRING",
            "k), ",
        ),
        (
            "SELECT * FROM TABLE(HOP(TABLE ev, DESCRIPTOR(ts), INTERVAL '1' MILLISECOND, INTERVAL '1' SECOND))",
            "HOP without aggregation puts each row in up to 1000 windows; at most 32 are supported (aggregate "
            "with GROUP BY window_start, window_end instead)",
            "TABLE(HOP",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE nope, DESCRIPTOR(ts), INTERVAL '1' SECOND))",
            "unknown",
            "nope",
        ),
        ("SELECT * FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts)))", "TUMBLE is missing SIZE", "TABLE(TUMBLE"),
        (
            "SELECT * FROM TABLE(SLIDE(TABLE ev, DESCRIPTOR(ts), INTERVAL '1' SECOND))",
            "unknown window table function 'SLIDE': use TUMBLE, HOP, CUMULATE or SESSION",
            "SLIDE",
        ),
        (
            "SELECT * FROM TABLE(HOP(TABLE ev, DESCRIPTOR(ts), SIZE => INTERVAL '1' SECOND, INTERVAL '2' SECOND))",
            "a positional argument of HOP cannot follow a named one",
            "INTERVAL '2' SECOND",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), WIDTH => INTERVAL '1' SECOND))",
            "TUMBLE has no parameter 'WIDTH': it takes DATA, TIMECOL, SIZE",
            "WIDTH",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE ev PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' SECOND))",
            "only SESSION takes PARTITION BY; TUMBLE windows are the same for every key",
            "TABLE ev PARTITION",
        ),
    ],
)
def test_misuse_is_refused_where_it_is_written(sql, message, at):
    err = _error(sql)
    assert message in err.message
    assert (err.line, err.column) == (1, sql.index(at) + 1)


# ---------------------------------------------------------------- the dataframe API and the REPL


def test_sd_cumulate_and_stream_window_build_the_sql_forms_plans():
    ctx = _ctx()
    ev = ctx.stream("ev")
    grouped = ev.group_by("k", sd.cumulate("ts", step="1s", size="10s")).agg(sd.count().alias("n"))
    sql = ctx.sql(
        "SELECT k, window_start, window_end, COUNT(*) AS n FROM ev GROUP BY k, CUMULATE(ts, INTERVAL '1' "
        "SECOND, INTERVAL '10' SECOND)"
    )
    assert grouped.collect().rows() == sql.collect().rows()
    assert "window=CUMULATE(ts, 1s, 10s)" in grouped.explain()
    rows = ev.window(sd.hop("ts", "5s", "10s"))
    tvf = ctx.sql("SELECT * FROM TABLE(HOP(TABLE ev, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND))")
    assert rows.columns == tvf.columns == ["k", "j", "ts", "window_start", "window_end", "window_time"]
    assert sorted(rows.collect().rows()) == sorted(tvf.collect().rows())
    with pytest.raises(BindError, match="SESSION"):
        ev.window(sd.session("ts", "5s"))


def test_the_repl_completes_the_new_keywords_and_functions():
    from stream_dsl.repl.lexer import function_names, keywords

    assert {"DESCRIPTOR", "PARTITION"} <= set(keywords())
    assert "cumulate" in {f.lower() for f in function_names()}
