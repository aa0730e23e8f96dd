"""A small ndjson batch's source task is two polars queries (connectors/ndjson_deferred.py, fused_read.py).

What must hold: a clean ndjson batch is read and decoded in one query and
its source stage (filter, join, partial aggregate, partitioning) runs in
one more, and the reduce step in none (polars queries per batch are counted, so a change that splits
them again fails here); a batch with bad lines gives plain polars' rows
over its good lines and the exact dead letters (the record, the reason) on
every executor.
"""

from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from stream_dsl.connectors.dead_letters import read_dead_letters

from budget import examples

LABELS = pl.DataFrame({"k": ["view", "click", "buy"], "label": ["V", "C", "V"]})
QUERY = "SELECT label, COUNT(*) AS n, COUNT(x) AS nx, MIN(x) AS lo FROM s JOIN t USING (k) WHERE x > 0 GROUP BY label"
GOOD = st.fixed_dictionaries(
    {
        "k": st.sampled_from(["view", "click", "other", None]),
        "x": st.one_of(st.none(), st.integers(-5, 5)),
        "ts": st.sampled_from([0, 1000, 59_000, "2000", "1970-01-01T00:00:07"]),  # epoch ms, as text, ISO
    }
)
BAD = st.sampled_from(
    [
        (b'{"k": "view", "x": "abc", "ts": 1}', "column 'x'"),
        (b'{"k": "view", "x": 1, "ts": "soon"}', "column 'ts'"),
        (b'{"k": "view", "x": 1', "invalid JSON"),
        (b"[1, 2]", "JSON object"),
    ]
)
LINE = st.one_of(GOOD.map(lambda r: (json.dumps(r).encode(), r)), BAD)


def write(data, files: list[list[tuple]]) -> None:
    """The files, the first starting with a good record (CREATE STREAM reads the first line to check the format)."""
    data.mkdir()
    files = [[(b'{"k": "buy", "x": 9, "ts": "0"}', {"k": "buy", "x": 9, "ts": "0"})] + files[0]] + files[1:]
    for i, lines in enumerate(files):
        (data / f"{i:03d}.ndjson").write_bytes(b"".join(line + b"\n" for line, _ in lines))
    LABELS.write_parquet(data.parent / "labels.parquet")


def context(data, executor: str = "inline", workers: int = 1, letters=None) -> sd.Context:
    ctx = sd.Context(executor=executor, workers=workers)
    ctx.config = ctx.config.with_options(diagnose_every=0)  # no batch is sampled: every one may take the fused path
    dead = f", dead_letter = '{letters}'" if letters is not None else ""
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (connector = 'files', "
        f"path = '{data}', format = 'ndjson', max_files_per_batch = '1'{dead});"
        f"CREATE TABLE t (k STRING, label STRING) WITH (connector = 'files', path = '{data.parent / 'labels.parquet'}')"
    )
    return ctx


def rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.select("label", "n", "nx", "lo").rows(), key=repr)


@settings(max_examples=examples(12))
@given(
    files=st.lists(st.lists(LINE, max_size=12), min_size=1, max_size=3),
    executor=st.sampled_from(["inline", "drizzle", "bsp"]),
    workers=st.sampled_from([1, 3]),
)
def test_ndjson_with_bad_lines_gives_plain_polars_rows_and_exact_dead_letters(
    tmp_path_factory, files, executor, workers
):
    data = tmp_path_factory.mktemp("nd") / "in"
    write(data, files)
    letters = data.parent / "bad.ndjson"
    got = context(data, executor, workers, letters).sql(QUERY).collect()
    files = [[(b'{"k": "buy", "x": 9, "ts": "0"}', {"k": "buy", "x": 9, "ts": "0"})] + files[0]] + files[
        1:
    ]  # as written
    good = [r for lines in files for _, r in lines if isinstance(r, dict)]
    events = pl.DataFrame(good, schema={"k": pl.String, "x": pl.Int64, "ts": pl.String})
    expected = pl.SQLContext(s=events.lazy(), t=LABELS.lazy()).execute(QUERY).collect()
    assert rows(got) == rows(expected)
    want = {
        (f"{data / f'{i:03d}.ndjson'}:{n}", line.decode(), reason)
        for i, lines in enumerate(files)
        for n, (line, reason) in enumerate(lines, start=1)
        if isinstance(reason, str)
    }
    found = read_dead_letters(str(letters)) if letters.exists() else []
    assert sorted((d["position"], d["raw"]) for d in found) == sorted((p, raw) for p, raw, _ in want)
    reasons = {d["position"]: d["reason"] for d in found}
    assert all(word in reasons[p] for p, _, word in want), reasons


class Queries:
    """The polars queries this process runs: lazy collects, `collect_all`, and the eager operations (a
    DataFrame's select, a Series method that polars runs as an expression) that run a query each."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        for owner, name in ((pl.LazyFrame, "collect"), (pl.LazyFrame, "_collect_eager"), (pl, "collect_all")):
            monkeypatch.setattr(owner, name, self._counted(getattr(owner, name)))

    def _counted(self, run):
        def counted(*args, **kwargs):
            self.count += 1
            return run(*args, **kwargs)

        return counted


def test_a_small_ndjson_batch_is_one_query(tmp_path, monkeypatch):
    """Per batch of 50 clean records, windowed and joined (the YSB shape): one query for the read and the
    decode, one for the stage; none for the small aggregate nor the output. Counted over runs of 3 and 6
    batches, so what a run costs once (planning, the table, the end of input) cancels out."""
    counts = []
    for batches in (3, 6):
        data = tmp_path / f"b{batches}"
        lines = [
            [(json.dumps({"k": ["view", "click", "buy"][j % 3], "x": j, "ts": 10_000 * i + j}).encode(), None)]
            for i in range(batches)
            for j in range(50)
        ]
        write(data, [[line for group in lines[i * 50 : (i + 1) * 50] for line in group] for i in range(batches)])
        stream = context(data).sql(
            "SELECT label, window_start, COUNT(*) AS n FROM s JOIN t USING (k) WHERE x > 0 "
            "GROUP BY label, TUMBLE(ts, INTERVAL '10' SECOND) EMIT ON WINDOW CLOSE"
        )
        queries = Queries(monkeypatch)
        got = stream.collect()
        counts.append(queries.count)
        monkeypatch.undo()
        assert got.get_column("n").sum() == 49 * batches + 1  # and the first file's extra record
    assert (counts[1] - counts[0]) / 3 <= 2, counts  # the emit of each closed window runs none either


def test_columns_the_one_query_read_cannot_convert_take_the_full_decode(tmp_path):
    """DECIMAL (exact from the number's text), DATE (from 'YYYY-MM-DD') and lists have their own decode rules: a
    clean batch holding them must not go through the one-query read's plain polars casts."""
    import datetime as dt
    from decimal import Decimal

    path = tmp_path / "in.ndjson"
    path.write_text(
        '{"k": "a", "x": 12345678901234567.125, "d": "2024-01-31", "n": [1, 2]}\n'
        '{"k": "b", "x": "0.1", "d": "2024-02-01", "n": []}\n'
    )
    expected = [
        ("a", Decimal("12345678901234567.125"), dt.date(2024, 1, 31), [1, 2]),
        ("b", Decimal("0.100"), dt.date(2024, 2, 1), []),
    ]
    for executor in ("inline", "drizzle", "bsp"):
        ctx = sd.Context(executor=executor, workers=1)
        ctx.sql(
            f"CREATE STREAM s (k STRING, x DECIMAL(38, 3), d DATE, n BIGINT[]) "
            f"WITH (connector = 'files', path = '{path}', format = 'ndjson')"
        )
        got = ctx.sql("SELECT k, x, d, n FROM s").collect()
        assert sorted(got.rows()) == expected, executor
