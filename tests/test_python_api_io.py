"""The dataframe API's readers, writers and query management (issue 24), checked against the SQL forms.

A reader's stream has the plan `CREATE STREAM ... WITH (connector = ...)`
gives, a writer the sink definition `CREATE SINK` gives; files written by
polars read back equal; a query started from Python is listed, named,
awaited and heard by listeners.
"""

from __future__ import annotations

import datetime as dt
import os
import threading

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from stream_dsl.connectors import files
from stream_dsl.errors import BindError, ConnectorError, DSLError


def ctx() -> sd.Context:
    return sd.Context(executor="inline", batch_interval="1s")


WRITERS = {
    "parquet": lambda frame, path: frame.write_parquet(path),
    "ndjson": lambda frame, path: frame.write_ndjson(path),
    "csv": lambda frame, path: frame.write_csv(path),
}

frames = st.integers(1, 30).flatmap(
    lambda n: st.fixed_dictionaries(
        {
            "id": st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n),
            "name": st.lists(st.text("abcxyz", min_size=1, max_size=5), min_size=n, max_size=n),
            "x": st.lists(st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3)), min_size=n, max_size=n),
        }
    )
)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=frames, parts=st.integers(1, 3))
def test_read_files_infers_the_columns_and_reads_back_what_polars_wrote(tmp_path_factory, fmt, data, parts):
    folder = tmp_path_factory.mktemp(fmt)
    frame = pl.DataFrame(data, schema={"id": pl.Int64, "name": pl.String, "x": pl.Float64})
    for k, piece in enumerate(frame.iter_slices(max(1, -(-frame.height // parts)))):
        WRITERS[fmt](piece, str(folder / f"part-{k}.{fmt}"))
    stream = ctx().read_files(str(folder), format=fmt)
    assert stream.schema == {"id": pl.Int64, "name": pl.String, "x": pl.Float64}
    assert stream.collect().sort("id", "name", "x").equals(frame.sort("id", "name", "x"))


def test_read_files_has_the_plan_create_stream_gives_and_registers_only_when_named(tmp_path):
    pl.DataFrame({"k": ["a"], "n": [1], "ts": [dt.datetime(2024, 1, 1)]}).write_parquet(tmp_path / "p.parquet")
    sql = ctx()
    sql.sql(
        f"CREATE STREAM ev (k STRING, n BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND) "
        f"WITH (connector = 'files', path = '{tmp_path}', format = 'parquet', max_files_per_batch = '1')"
    )
    api = ctx()
    anonymous = api.read_files(str(tmp_path), format="parquet", watermark="ts", watermark_delay="2s")
    assert api.sql("SHOW STREAMS").height == 0  # nothing registered
    named = api.read_files(
        str(tmp_path),
        format="parquet",
        schema={"k": "STRING", "n": pl.Int64, "ts": sd.TIMESTAMP},
        watermark="ts",
        watermark_delay=dt.timedelta(seconds=2),
        max_files_per_batch=1,
        name="ev",
    )
    assert named.plan == sql.stream("ev").plan
    assert api.sql("SELECT n FROM ev").collect()["n"].to_list() == [1]
    assert anonymous.plan.source.watermark == named.plan.source.watermark
    assert anonymous.plan.source.schema == named.plan.source.schema


def test_reader_mistakes_fail_when_the_reader_is_called(tmp_path):
    pl.DataFrame({"n": [1]}).write_parquet(tmp_path / "p.parquet")
    with pytest.raises(ConnectorError, match="unknown argument wtach=.*did you mean 'watch'"):
        ctx().read_files(str(tmp_path), wtach=True)
    with pytest.raises(BindError, match="watermark column 'n' must be a TIMESTAMP"):
        ctx().read_files(str(tmp_path), watermark="n")
    with pytest.raises(ConnectorError, match="pass schema="):
        os.makedirs(tmp_path / "empty")
        ctx().read_files(str(tmp_path / "empty"), format="parquet", watch=True)


@pytest.mark.parametrize(
    "connector, read, options",
    [
        ("redis", "read_redis", {"url": "redis://127.0.0.1:7000", "group": "g", "format": "json"}),
        ("kafka", "read_kafka", {"bootstrap_servers": "127.0.0.1:9092", "partitions": "0,1", "bounded": "true"}),
    ],
)
def test_redis_and_kafka_readers_have_the_plans_create_stream_gives(connector, read, options):
    target = "clicks"
    key = "stream" if connector == "redis" else "topic"
    with_clause = ", ".join(f"{k} = '{v}'" for k, v in {"connector": connector, key: target, **options}.items())
    sql = ctx()
    sql.sql(f"CREATE STREAM clicks (user_id STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH ({with_clause})")
    api = ctx()
    keyword = {k: v for k, v in options.items() if k not in ("url", "bootstrap_servers")}
    server = {"url": options["url"]} if connector == "redis" else {"bootstrap_servers": options["bootstrap_servers"]}
    stream = getattr(api, read)(
        target, schema={"user_id": str, "ts": dt.datetime}, watermark="ts", name="clicks", **server, **keyword
    )
    assert stream.plan == sql.stream("clicks").plan


def test_sink_files_writes_what_insert_into_writes(tmp_path):
    source, via_sql, via_api = tmp_path / "in", tmp_path / "sql", tmp_path / "api"
    os.makedirs(source)
    frame = pl.DataFrame({"k": ["a", "b", "a", "c"], "n": [1, 2, 3, 4]})
    for k in range(2):
        frame.slice(2 * k, 2).write_ndjson(source / f"p{k}.ndjson")
    sql = ctx()
    sql.sql(f"CREATE STREAM ev (k STRING, n BIGINT) WITH (connector = 'files', path = '{source}')")
    sql.sql(f"CREATE SINK out WITH (connector = 'files', path = '{via_sql}', format = 'csv')")
    assert sql.sql("INSERT INTO out SELECT k, n * 10 AS m FROM ev WHERE n > 1").await_termination(60)
    api = ctx()
    stream = api.read_files(str(source)).filter(sd.col("n") > 1).select("k", m=sd.col("n") * 10)
    handle = stream.sink_files(str(via_api), format="csv", name="to_csv")
    assert handle.await_termination(60) and handle.name == "to_csv"
    assert files.read_committed(str(via_api)).equals(files.read_committed(str(via_sql)))
    assert files.read_committed(str(via_api)).sort("m")["m"].to_list() == [20, 30, 40]
    with pytest.raises(ConnectorError, match="unknown argument compresion="):
        stream.sink_files(str(tmp_path / "x"), compresion="zstd").await_termination(60)


def test_queries_are_named_listed_awaited_and_heard(tmp_path):
    api = ctx()
    folder = tmp_path / "in"
    os.makedirs(folder)
    pl.DataFrame({"n": list(range(5))}).write_parquet(folder / "p.parquet")
    heard: list[dict] = []
    own: list[dict] = []
    seen = threading.Event()

    def failing_listener(progress: dict) -> None:
        raise RuntimeError("a listener's own bug")

    api.add_listener(heard.append)
    api.add_listener(failing_listener)  # logged; the queries go on
    live = api.read_files(str(folder), watch=True).start(lambda b, f: seen.set(), name="live", on_progress=own.append)
    try:
        assert [q.name for q in api.queries] == ["live"]
        with pytest.raises(DSLError, match="a query named 'live' is already running"):
            api.read_files(str(folder)).start(lambda b, f: None, name="live")
        done = api.read_files(str(folder)).start(lambda b, f: None, name="bounded")
        assert api.await_any_termination(60) is done  # the bounded one ends by itself
        assert seen.wait(60)
        assert [q.name for q in api.queries] == ["live"]
        assert api.await_any_termination(0.1) is None  # `done` was returned already; `live` runs
    finally:
        live.stop(60)
    assert api.await_any_termination(5) is live
    names = {p["query_name"] for p in heard}
    assert names == {"live", "bounded"} and all(p["query_name"] == "live" for p in own) and own
    for progress in heard:
        assert progress["query_id"] in (live.id, done.id)
        assert isinstance(progress["timestamp"], float) and "rows_in_per_s" in progress
    api.reset_terminated()
    assert api.await_any_termination(0.1) is None


def test_a_failed_query_re_raises_from_await_any_termination(tmp_path):
    api = ctx()
    folder = tmp_path / "in"
    os.makedirs(folder)
    pl.DataFrame({"n": [1, 0]}).write_parquet(folder / "p.parquet")

    def sink(batch_id: int, frame: pl.DataFrame) -> None:
        raise ValueError("the sink broke")

    api.read_files(str(folder)).start(sink, name="broken")
    with pytest.raises(DSLError, match="the sink broke"):
        api.await_any_termination(60)


def test_a_sink_function_with_the_wrong_parameters_is_refused_with_the_signature_expected(tmp_path):
    pl.DataFrame({"n": [1]}).write_parquet(tmp_path / "p.parquet")
    stream = ctx().read_files(str(tmp_path))

    def one(frame):
        return None

    with pytest.raises(ConnectorError, match=r"fn\(batch_id: int, frame: polars.DataFrame\).*one\(frame\)"):
        stream.start(one)
    stream.start(lambda batch_id, frame, extra=None: None).await_termination(60)  # optional extras are fine


def test_a_polars_expression_given_by_mistake_says_to_use_sd_col():
    stream = ctx().from_polars(pl.DataFrame({"a": [1, 2]}))
    for mistake in (
        lambda: stream.filter(pl.col("a") > 1),
        lambda: stream.select(pl.col("a")),
        lambda: stream.with_columns(b=pl.col("a") + 1),
        lambda: stream.filter(sd.col("a") > pl.lit(1)),
    ):
        with pytest.raises(DSLError, match=r"is a polars Expr; stream-dsl expressions are built with sd.col"):
            mistake()
