"""A small ndjson batch's source task is two polars queries (connectors/ndjson_deferred.py, fused_read.py).

What must hold: a clean ndjson batch is read and decoded in one query and
its source stage (filter, join, partial aggregate, partitioning) runs in
one more, and the reduce step in none (polars queries per batch are counted, so a change that splits
them again fails here); a batch with bad lines gives plain polars' rows
over its good lines and the exact dead letters (the record, the reason) on
every executor.
"""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from stream_dsl.connectors.dead_letters import read_dead_letters

from budget import examples

LABELS = pl.DataFrame({"k": ["view", "click", "buy"], "label": ["V", "C", "V"]})
QUERY = "SELECT label, COUNT(*) AS n, COUNT(x) AS nx, MIN(x) AS lo FROM s JOIN t USING (k) WHERE x > 0 GROUP BY label"
ROWS = "SELECT label, x, ts FROM s JOIN t USING (k) WHERE x > 0"  # the converted timestamps too
# epoch ms as numbers, as text, as padded text (the one-query read does not strip it: the full decode does), ISO
EPOCH_MS = {
    0: 0,
    1000: 1000,
    59_000: 59_000,
    "0": 0,
    "2000": 2000,
    " 2000": 2000,
    "3000\t": 3000,
    "1970-01-01T00:00:07": 7000,
}
GOOD = st.fixed_dictionaries(
    {
        "k": st.sampled_from(["view", "click", "other", None]),
        "x": st.one_of(st.none(), st.integers(-5, 5)),
        "ts": st.sampled_from(list(EPOCH_MS)),
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
BLANK = st.sampled_from([b"", b"  ", b"\t"]).map(lambda line: (line, None))  # skipped, but counted in positions
LINE = st.one_of(GOOD.map(lambda r: (json.dumps(r).encode(), r)), BAD, BLANK)
# A record that makes its file large (1 MiB), with a first line longer than the prefix the types are sniffed from
# when it comes first; its key joins no label, so it adds no result row.
PAD = {"k": "pad", "x": 1, "ts": 0, "pad": "p" * (1 << 20)}
# How a file is written: as is, gzip'ed, made large by PAD first or last, holding only blank lines, or under a
# name that is a glob to polars ('[_]001.ndjson' matches '_001.ndjson', a file the source skips: a decoy, which a
# scan of the path would read instead)
KINDS = st.sampled_from(["plain", "gz", "large first", "large last", "blank", "glob"])
FIRST = (b'{"k": "buy", "x": 9, "ts": "0"}', {"k": "buy", "x": 9, "ts": "0"})


def as_written(files: list[tuple[list[tuple], str]]) -> list[tuple[str, list[tuple]]]:
    """Each file's name and lines; the first starts with a good record (CREATE STREAM reads the first line to
    check the format)."""
    written = []
    for i, (lines, kind) in enumerate(files):
        if kind == "blank":
            lines = [(b" ", None), (b"", None)]
        if kind.startswith("large"):
            pad = (json.dumps(PAD).encode(), PAD)
            lines = [pad] + lines if kind == "large first" else lines + [pad]
        name = f"[_]{i:03d}.ndjson" if kind == "glob" and i else f"{i:03d}.ndjson" + (".gz" if kind == "gz" else "")
        written.append((name, [FIRST] + lines if i == 0 else lines))
    return written


def write(data, files: list[tuple[list[tuple], str]]) -> list[tuple[str, list[tuple]]]:
    data.mkdir()
    written = as_written(files)
    for name, lines in written:
        text = b"".join(line + b"\n" for line, _ in lines)
        (data / name).write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
        if name.startswith("[_]"):
            (data / name.replace("[_]", "_")).write_bytes(b'{"k": "view", "x": 5, "ts": 0}\n')
    LABELS.write_parquet(data.parent / "labels.parquet")
    return written


def context(data, executor: str = "inline", workers: int = 1, letters=None, per_batch=1, every=0) -> sd.Context:
    ctx = sd.Context(executor=executor, workers=workers)
    ctx.config = ctx.config.with_options(diagnose_every=every)  # 0: no batch is sampled, every one may be fused
    dead = f", dead_letter = '{letters}'" if letters is not None else ""
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (connector = 'files', "
        f"path = '{data}', format = 'ndjson', max_files_per_batch = '{per_batch}'{dead});"
        f"CREATE TABLE t (k STRING, label STRING) WITH (connector = 'files', path = '{data.parent / 'labels.parquet'}')"
    )
    return ctx


def started(stream) -> pl.DataFrame:
    """An append query's rows, run with `start` (whose batches are sampled every `diagnose_every`)."""
    frames: list[pl.DataFrame] = []
    stream.start(sink=lambda batch, frame: frames.append(frame)).await_termination()
    return pl.concat(frames) if frames else pl.DataFrame()


def rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.select("label", "n", "nx", "lo").rows(), key=repr)


PADDED = {"k": "view", "x": 1, "ts": " 2000"}


@settings(max_examples=examples(12))
@example(  # a large batch whose padded value and bad timestamp must reach the full decode; a name polars would glob
    files=[
        (
            [(json.dumps(PADDED).encode(), PADDED), (b'{"k": "view", "x": 1, "ts": "soon"}', "column 'ts'")],
            "large first",
        ),
        ([(json.dumps(FIRST[1]).encode(), FIRST[1])], "glob"),
    ],
    executor="drizzle",
    workers=1,
    per_batch=1,
    every=0,
)
@given(
    files=st.lists(st.tuples(st.lists(LINE, max_size=12), KINDS), min_size=1, max_size=3),
    executor=st.sampled_from(["inline", "drizzle", "bsp"]),
    workers=st.sampled_from([1, 3]),
    per_batch=st.sampled_from([1, 2]),
    every=st.sampled_from([0, 2]),  # 2: batches 0, 2, .. are sampled (`diagnose_every`): counted in the fused query
)
def test_ndjson_with_bad_lines_gives_plain_polars_rows_and_exact_dead_letters(
    tmp_path_factory, files, executor, workers, per_batch, every
):
    """Whatever way a batch goes (one-query read, small or large, fused or sampled; the full decode when a line
    is bad or a value padded), the rows are plain polars' over the good lines and the dead letters exact."""
    data = tmp_path_factory.mktemp("nd") / "in"
    written = write(data, files)
    letters = data.parent / "bad.ndjson"
    ctx = context(data, executor, workers, letters, per_batch, every)
    good = [{**r, "ts": EPOCH_MS[r["ts"]]} for _, lines in written for _, r in lines if isinstance(r, dict)]
    events = pl.DataFrame(good, schema={"k": pl.String, "x": pl.Int64, "ts": pl.Int64})
    events = events.with_columns(pl.col("ts").cast(pl.Datetime("ms")))
    if every:  # collect() samples no batch: a started query does
        expected = pl.SQLContext(s=events.lazy(), t=LABELS.lazy()).execute(ROWS).collect()
        assert sorted(started(ctx.sql(ROWS)).rows()) == sorted(expected.rows())
    else:
        expected = pl.SQLContext(s=events.lazy(), t=LABELS.lazy()).execute(QUERY).collect()
        assert rows(ctx.sql(QUERY).collect()) == rows(expected)
    want = {
        (f"{data / name}:{n}", line.decode(), reason)
        for name, lines in written
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
        write(
            data,
            [([line for group in lines[i * 50 : (i + 1) * 50] for line in group], "plain") for i in range(batches)],
        )
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


def test_a_large_ndjson_batch_is_one_query_and_never_the_full_decode(tmp_path, monkeypatch):
    """Per batch of one large file (1 MiB or more), windowed and joined (the YSB shape): one `collect_all`
    reads, checks and runs the stage, and the reduce step none; the file's bytes are not read into Python (only
    the start its types are sniffed from), and no batch takes the full decode, not even a sampled one
    (`diagnose_every`), which reads through the same one-query decode."""
    from stream_dsl.connectors import files as files_connector
    from stream_dsl.connectors import ndjson_deferred

    full_reads: list[str] = []
    read_file = files_connector.read_file

    def counted(path, *args):
        full_reads.append(path)
        return read_file(path, *args)

    monkeypatch.setattr(files_connector, "read_file", counted)
    counts = []
    for batches in (3, 6):
        data = tmp_path / f"b{batches}"
        lines = [
            (json.dumps({"k": ["view", "click", "buy"][j % 3], "x": j, "ts": 10_000 * i + j}).encode(), None)
            for i in range(batches)
            for j in range(50)
        ]
        write(data, [(lines[i * 50 : (i + 1) * 50], "large last") for i in range(batches)])
        for every in (0, 2):  # 2: batches 0, 2, 4 are sampled
            stream = context(data, every=every).sql(
                "SELECT label, window_start, COUNT(*) AS n FROM s JOIN t USING (k) WHERE x > 0 "
                "GROUP BY label, TUMBLE(ts, INTERVAL '10' SECOND) EMIT ON WINDOW CLOSE"
            )
            with pytest.MonkeyPatch.context() as patch:
                queries = Queries(patch)
                got = started(stream) if every else stream.collect()  # collect() samples no batch
            if every == 0:
                counts.append(queries.count)
            assert got.get_column("n").sum() == 49 * batches + 1  # and the first file's extra record
    assert not [p for p in full_reads if p.endswith(".ndjson")], full_reads
    assert (counts[1] - counts[0]) / 3 <= 1, counts  # the small two-query path: 2
    text = ndjson_deferred._text(str(data / "000.ndjson"))
    assert text is not None and len(text[1]) == ndjson_deferred.SNIFF_BYTES  # a prefix, not the file
