"""Checkpoints: operator-state snapshots (`executor.state.snapshots`) and the checkpoint store
(`executor.recovery.store`).

- A restored state is the state: for every stateful operator kind (TUMBLE,
  HOP and SESSION windows emitting final rows or changes, COUNT(DISTINCT),
  non-windowed GROUP BY, both aggregate phases, DISTINCT), over random
  schemas and rows, a state snapshotted at a random batch, pickled (and
  through a real part file), restored and stepped on gives every later
  output, deletion and late count of the original; in the Python dict, in
  polars, and after the dict moved to polars.
- The store: what `commit` writes `latest` reads back, keys and all;
  half-written, corrupt (part or manifest) and altered checkpoints are
  passed over with the reason; only the newest few are kept; another
  query's checkpoints and another process's lock are refused with clear
  messages; a part file cannot run code.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import pickle
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from executor import kernels
from executor.state import small as state_small
from executor.recovery.store import (
    CHECKPOINTS_KEPT,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointCorrupt,
    CheckpointStore,
    fingerprint,
    read_part,
    write_part,
)
from executor.state.clocks import WM_INF
from executor.state.distinct import DistinctState
from executor.state.operators import make_state
from executor.state.snapshots import restore_state, snapshot_state
from executor.state.step import StepOutput
from optimizer.physical.stages import TIME_COLUMN, AggregateOp, AggSpec, DistinctOp, PartialAggregateOp
from stream_dsl.errors import CheckpointError, DSLError
from stream_dsl.ir.to_polars_checks import OverflowFailure

from budget import examples
from stream_dsl.ir.definitions import WindowSpec
from stream_dsl.ir.partial_state import state_fields
from stream_dsl.ir.plan import PARTIAL_DISTINCT, PARTIAL_ROWS
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Field, Schema

REPO = Path(__file__).resolve().parent.parent
BASE = dt.datetime(2024, 1, 1)
WAIT = 120  # seconds: only a bound on waits for a helper process, so a broken test fails instead of hanging

# ---------------------------------------------------------------- random operators, rows and watermarks

POOLS = {  # values of each column type, NULLs included
    T.STRING: ["a", "b", "é", "", None],
    T.INT: [1, -2, 0, 2**31 - 1, None],
    T.BIGINT: [0, 5, -7, 2**50, None],  # large, yet no SUM of a test leaves BIGINT (that raises: test_state_small)
    T.DOUBLE: [0.5, -1.25, 0.0, -0.0, math.nan, None],
    T.BOOLEAN: [True, False, None],
    T.TIMESTAMP: [BASE, BASE + dt.timedelta(milliseconds=1500), None],
}
TIMES_MS = [None, 0, 350, 999, 1000, 1700, 2400, 3100, 4000, 4999, 6500]
KEY_TYPES = [T.STRING, T.STRING, T.INT, T.BIGINT, T.BOOLEAN, T.TIMESTAMP, T.DOUBLE]  # DOUBLE: never the dict
VALUE_TYPES = [T.BIGINT, T.INT, T.DOUBLE, T.STRING, T.BOOLEAN, T.TIMESTAMP]
WINDOWS = {
    None: None,
    "tumble": WindowSpec("tumble", "ts", 1000),
    "hop": WindowSpec("hop", "ts", 1000, 400),
    "session": WindowSpec("session", "ts", 700),
}


def _funcs(dtype: T) -> list[str]:
    out = ["count", "count_distinct", "min", "max"]
    return out + ["sum", "avg"] if dtype.is_numeric else out


def _agg_type(func: str, dtype: T) -> T:
    if func in ("count", "count_distinct", "count_star"):
        return T.BIGINT
    if func == "avg" or (func == "sum" and dtype is T.DOUBLE):
        return T.DOUBLE
    return T.BIGINT if func == "sum" else dtype


@st.composite
def aggregate_cases(draw):
    """An AggregateOp over a random schema (keys k0.., values v0.., TIME_COLUMN) and its input rows' schema."""
    kind = draw(st.sampled_from(list(WINDOWS)))
    window = WINDOWS[kind]
    emit = "final" if window is not None and draw(st.booleans()) else "changes"
    key_types = draw(st.lists(st.sampled_from(KEY_TYPES), max_size=2))
    value_types = draw(st.lists(st.sampled_from(VALUE_TYPES), min_size=1, max_size=2))
    columns = {f"k{i}": t for i, t in enumerate(key_types)} | {f"v{i}": t for i, t in enumerate(value_types)}
    phase = "final" if kind in (None, "tumble") and draw(st.booleans()) else "single"
    calls = draw(st.lists(st.tuples(st.integers(0, len(value_types) - 1), st.integers(0, 99)), min_size=1, max_size=4))
    specs = []
    for j, (v, pick) in enumerate(calls):
        dtype = value_types[v]
        funcs = _funcs(dtype) + ["count_star"]
        func = funcs[pick % len(funcs)]
        if func == "count_distinct" and (v != 0 or any(spec[4] for spec in specs)):
            func = "count"  # one COUNT(DISTINCT v0): two-phase has one argument, and lowering gives each its own
        distinct = func == "count_distinct"
        name, base = f"a{j}", "count" if func in ("count_distinct", "count_star") else func
        arg = None if func == "count_star" else f"v{v}"
        specs.append((name, base, arg, _agg_type(func, dtype), distinct))
    keys = tuple(f"k{i}" for i in range(len(key_types)))
    fields = [Field(k, columns[k]) for k in keys]
    if window is not None:
        fields += [Field("window_start", T.TIMESTAMP), Field("window_end", T.TIMESTAMP)]
    fields += [Field(name, dtype) for name, _, _, dtype, _ in specs]
    output = Schema(tuple(fields))
    if phase == "single":
        op = AggregateOp(keys, tuple(AggSpec(*s) for s in specs), window, emit, output)
        return op, columns, None
    final_specs = tuple(AggSpec(n, f, PARTIAL_DISTINCT if d else None, t, d) for n, f, _, t, d in specs)
    op = AggregateOp(keys, final_specs, window, emit, output, "final")
    return op, columns, partial_op(op, columns, specs)


def partial_op(op: AggregateOp, columns: dict[str, T], specs: list[tuple]) -> PartialAggregateOp:
    """The map side of a two-phase aggregate `op` (as `optimizer.physical.lower` builds it)."""
    aggs = tuple(AggSpec(n, f, PARTIAL_DISTINCT if d else a, t, d) for n, f, a, t, d in specs)
    fields = [Field(k, columns[k]) for k in op.keys]
    if op.window is not None:
        fields += [Field("window_start", T.TIMESTAMP), Field("window_end", T.TIMESTAMP)]
    distinct = any(a.distinct for a in aggs)
    if distinct:
        fields.append(Field(PARTIAL_DISTINCT, columns["v0"]))
    fields.append(Field(PARTIAL_ROWS, T.BIGINT))
    for i, a in enumerate(aggs):
        fields += state_fields(i, a.func, a.dtype, a.distinct)
    return PartialAggregateOp(op.keys, aggs, op.window, distinct, Schema(tuple(fields)))


def random_rows(rnd, columns: dict[str, T], n: int) -> pl.DataFrame:
    data = {name: [rnd.choice(POOLS[t]) for _ in range(n)] for name, t in columns.items()}
    times = [rnd.choice(TIMES_MS) for _ in range(n)]
    data[TIME_COLUMN] = [None if t is None else BASE + dt.timedelta(milliseconds=t) for t in times]
    schema = {name: t.polars for name, t in columns.items()} | {TIME_COLUMN: pl.Datetime("ms")}
    return pl.DataFrame(data, schema=schema)


@st.composite
def streams(draw, case):
    """(op, batches, watermarks): batches small (the dict path) and large (polars), watermarks advancing."""
    op, columns, partial = draw(case)
    rnd = draw(st.randoms(use_true_random=False))
    sizes = draw(st.lists(st.sampled_from([3, 8, 12, state_small.MAX_BATCH_ROWS + 44, 1, 0]), min_size=1, max_size=7))
    if draw(st.booleans()):
        sizes.insert(1, state_small.MAX_BATCH_ROWS + 1)  # a dict state (if the first batch made one) moves to polars
    windowed = isinstance(op, AggregateOp) and op.window is not None
    batches, marks, wm = [], [], None
    for n in sizes:
        rows = random_rows(rnd, columns, n)
        if partial is not None:
            if partial.distinct:
                rows = rows.with_columns(pl.col("v0").alias(PARTIAL_DISTINCT))
            rows = kernels.compile_pipeline([partial]).run(rows, {})
        elif isinstance(op, DistinctOp):
            rows = rows.select(op.columns)
        batches.append(rows)
        step = draw(st.sampled_from([None, 0, 400, 1000, 2500]))
        new = wm if step is None or not windowed else (step if wm is None else wm + step)
        marks.append((wm, new))
        wm = new
    # a last batch repeats every row (showing any state lost) and closes every window
    batches.append(pl.concat(batches, how="vertical"))
    marks.append((wm, WM_INF if windowed else None))
    return op, batches, marks


@st.composite
def distinct_cases(draw):
    types = draw(st.lists(st.sampled_from(VALUE_TYPES), min_size=1, max_size=3))
    columns = {f"v{i}": t for i, t in enumerate(types)}
    with_time = draw(st.booleans())
    names = tuple(columns) + ((TIME_COLUMN,) if with_time else ())
    return DistinctOp(names), columns, None


# ---------------------------------------------------------------- restored states step as the original


def same_output(ours: StepOutput, theirs: StepOutput, context: str) -> None:
    assert ours.late == theirs.late, context
    assert (ours.deletes is None) == (theirs.deletes is None), context
    try:
        assert_frame_equal(ours.frame, theirs.frame, check_row_order=False)
        if ours.deletes is not None:
            assert_frame_equal(ours.deletes, theirs.deletes, check_row_order=False)
    except AssertionError as exc:
        raise AssertionError(f"{context}\n{exc}\n{ours}\n{theirs}") from None


def where(state) -> str:
    if isinstance(state, DistinctState):
        return "distinct"
    if state.small is not None:
        return "dict"
    return "polars" if state._frame is not None or state.distinct else "empty"


def check_restore(op, batches, marks, cut: int) -> None:
    """Step to `cut`, snapshot, step on; a state restored from the snapshot must step the same."""
    original = make_state(op)
    places = []
    for rows, (wm_prev, wm_new) in zip(batches[:cut], marks[:cut]):
        assume(not isinstance(stepped(original, rows, (wm_prev, wm_new)), OverflowFailure))  # nothing to restore
        places.append(where(original))
    at_cut = where(original)
    event(f"cut in state: {at_cut}" + (" (was in the dict)" if at_cut == "polars" and "dict" in places else ""))
    if isinstance(op, AggregateOp):
        event(
            f"operator: {op.window.kind if op.window else 'no window'}, emit {op.emit}, phase {op.phase}"
            + (", COUNT(DISTINCT)" if any(a.distinct for a in op.aggs) else "")
        )
    snapshot = snapshot_state(original)
    with tempfile.TemporaryDirectory() as directory:
        sha = write_part(directory, "worker-1.state", {(3, 1): original})
        expected = []  # after the part was written: the part holds a copy
        for rows, mark in zip(batches[cut:], marks[cut:]):
            expected.append(stepped(original, rows, mark))
            if isinstance(expected[-1], OverflowFailure):
                break
        from_file = read_part(os.path.join(directory, "worker-1.state"), sha, {(3, 1): op, (3, 2): op})
    assert list(from_file) == [(3, 1)]
    from_pickle = restore_state(op, pickle.loads(pickle.dumps(snapshot, protocol=5)))
    for restored, how in ((from_file[(3, 1)], "part file"), (from_pickle, "pickle")):
        assert where(restored) == at_cut, how
        for b, (rows, mark, want) in enumerate(zip(batches[cut:], marks[cut:], expected)):
            context = f"{how}: {op.describe()} cut={cut} batch={cut + b} wm={mark} rows={rows.height}"
            got = stepped(restored, rows, mark)
            if isinstance(want, OverflowFailure):  # a SUM beyond BIGINT raises the same after a restore
                assert isinstance(got, OverflowFailure) and str(got) == str(want), context
            else:
                same_output(got, want, context)


def stepped(state, rows, mark):
    """The state's output for one batch, or the OverflowFailure it raised (SUM beyond BIGINT)."""
    try:
        return state.step(rows, *mark)
    except OverflowFailure as overflow:
        return overflow


@settings(
    max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(stream=streams(aggregate_cases()), data=st.data())
def test_a_restored_aggregate_state_steps_exactly_as_the_original(stream, data):
    op, batches, marks = stream
    check_restore(op, batches, marks, data.draw(st.integers(1, len(batches) - 1), label="cut"))


@settings(
    max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(stream=streams(distinct_cases()), data=st.data())
def test_a_restored_distinct_state_steps_exactly_as_the_original(stream, data):
    op, batches, marks = stream
    check_restore(op, batches, marks, data.draw(st.integers(1, len(batches) - 1), label="cut"))


def _op(window: str | None, emit: str, *aggs: AggSpec, keys=("k0",)) -> AggregateOp:
    fields = [Field(k, T.STRING) for k in keys]
    if window is not None:
        fields += [Field("window_start", T.TIMESTAMP), Field("window_end", T.TIMESTAMP)]
    return AggregateOp(
        keys, aggs, WINDOWS[window], emit, Schema(tuple(fields + [Field(a.name, a.dtype) for a in aggs]))
    )


def _rows(n: int, start_ms: int = 0, key: str = "a") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "k0": [key] * (n // 2) + ["b"] * (n - n // 2),
            "v0": list(range(n)),
            TIME_COLUMN: [BASE + dt.timedelta(milliseconds=start_ms + 37 * i) for i in range(n)],
        },
        schema={"k0": pl.String, "v0": pl.Int64, TIME_COLUMN: pl.Datetime("ms")},
    )


COUNT, SUM = AggSpec("n", "count", None, T.BIGINT), AggSpec("s", "sum", "v0", T.BIGINT)
DISTINCT_V = AggSpec("d", "count", "v0", T.BIGINT, True)
BIG = state_small.MAX_BATCH_ROWS + 10


@pytest.mark.parametrize(
    "op, sizes, places",
    [
        (_op("tumble", "final", COUNT, SUM), [5, 5], ["dict", "dict"]),
        (_op("hop", "changes", COUNT, SUM), [5, BIG], ["dict", "polars"]),
        (_op(None, "changes", COUNT, SUM), [BIG, 3], ["polars", "polars"]),
        (_op("session", "changes", COUNT, DISTINCT_V), [6, 6], ["polars", "polars"]),
        (_op("session", "final", SUM), [6, 6], ["polars", "polars"]),
        (_op("tumble", "changes", DISTINCT_V, SUM), [4, 4], ["polars", "polars"]),
    ],
    ids=["tumble-dict", "hop-moved-to-polars", "groupby-polars", "session-distinct", "session-final", "distinct"],
)
def test_each_place_a_state_lives_is_restored_there(op, sizes, places):
    batches = [_rows(n, 900 * i) for i, n in enumerate(sizes)] + [_rows(7, 1500, "c"), _rows(9, 400)]
    marks = [(None, 500), (500, 1200), (1200, 1900), (1900, WM_INF)]
    state = make_state(op)
    seen = []
    for rows, mark in zip(batches[:2], marks[:2]):
        state.step(rows, *mark)
        seen.append(where(state))
    assert seen == places
    restored = restore_state(op, pickle.loads(pickle.dumps(snapshot_state(state), protocol=5)))
    assert where(restored) == places[-1] and restored.open_groups == state.open_groups > 0
    assert restored._may_be_small == state._may_be_small
    for rows, mark in zip(batches[2:], marks[2:]):
        same_output(restored.step(rows, *mark), state.step(rows, *mark), f"{op.describe()} {mark}")


def test_a_fresh_state_is_restored_fresh():
    for op in (_op("tumble", "final", COUNT, SUM), _op("session", "changes", DISTINCT_V), DistinctOp(("k0", "v0"))):
        restored = restore_state(op, pickle.loads(pickle.dumps(snapshot_state(make_state(op)), protocol=5)))
        assert where(restored) in ("empty", "distinct") and restored.step(_rows(0), None, None).frame.height == 0
        rows = _rows(6).select("k0", "v0") if isinstance(op, DistinctOp) else _rows(6)
        same_output(restored.step(rows, None, 1000), make_state(op).step(rows, None, 1000), op.describe())


def test_a_snapshot_of_one_kind_does_not_restore_another():
    agg = _op(None, "changes", COUNT)
    with pytest.raises(ValueError, match="cannot restore"):
        restore_state(DistinctOp(("k0",)), snapshot_state(make_state(agg)))
    with pytest.raises(ValueError, match="COUNT\\(DISTINCT\\)"):
        restore_state(agg, snapshot_state(make_state(_op(None, "changes", DISTINCT_V))) | {"distinct": {0: None}})


# ---------------------------------------------------------------- part files


def _states(n_keys: int = 2) -> tuple[dict, dict]:
    op = _op("tumble", "final", COUNT, SUM)
    states, ops = {}, {}
    for p in range(n_keys):
        state = make_state(op)
        state.step(_rows(6, 100 * p), None, 500)
        states[(4, p)], ops[(4, p)] = state, op
    return states, ops


def test_a_part_file_is_replaced_atomically_and_read_back(tmp_path):
    states, ops = _states()
    sha = write_part(str(tmp_path), "worker-1.state", states)
    sha2 = write_part(str(tmp_path), "worker-1.state", states)  # a rewrite replaces it
    assert sha == sha2 and sorted(os.listdir(tmp_path)) == ["worker-1.state"]  # no temporary file left
    back = read_part(str(tmp_path / "worker-1.state"), sha, {(4, 1): ops[(4, 1)], (9, 9): ops[(4, 1)]})
    assert list(back) == [(4, 1)]
    assert_frame_equal(back[(4, 1)].state, states[(4, 1)].state, check_row_order=False)
    with pytest.raises(ValueError, match="not a valid checkpoint part name"):
        write_part(str(tmp_path), "../escape", states)


def test_a_damaged_or_missing_part_file_is_corrupt(tmp_path):
    states, ops = _states()
    path = tmp_path / "p.state"
    sha = write_part(str(tmp_path), "p.state", states)
    with pytest.raises(CheckpointCorrupt, match="cannot be read"):
        read_part(str(tmp_path / "missing.state"), sha, ops)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorrupt, match="checksum mismatch"):
        read_part(str(path), sha, ops)
    assert issubclass(CheckpointCorrupt, CheckpointError) and issubclass(CheckpointError, DSLError)


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_part_file_cannot_run_code_even_with_a_matching_checksum(tmp_path):
    import hashlib
    import struct

    data = struct.pack(">8sI", b"SDSTATE\n", FORMAT_VERSION) + pickle.dumps({(1, 0): _Boom()}, protocol=5)
    path = tmp_path / "evil.state"
    path.write_bytes(data)
    with pytest.raises(CheckpointCorrupt, match="may not refer to (posix|os).system"):
        read_part(str(path), hashlib.sha256(data).hexdigest(), {(1, 0): _op(None, "changes", COUNT)})


# ---------------------------------------------------------------- the store

QUERY = "Stage 0: Scan events\n  ShuffleWrite hash[k0] -> stage 1\nStage 1: Aggregate [k0] TUMBLE\n  Output append"


def store(root: Path, query: str = QUERY, keep: int = CHECKPOINTS_KEPT) -> CheckpointStore:
    return CheckpointStore(str(root), fingerprint(query), query, keep)


def commit_one(s: CheckpointStore, next_batch: int, parts=("worker-1.state", "worker-2.state")) -> Checkpoint:
    """A checkpoint of `next_batch` with a part per worker, each holding one partition of stage 4."""
    states, _ = _states(len(parts))
    ckpt_id, directory = s.begin()
    shas = {name: write_part(directory, name, {(4, p): states[(4, p)]}) for p, name in enumerate(parts)}
    return s.commit(
        ckpt_id,
        next_batch=next_batch,
        watermark=1000 * next_batch,
        clocks={0: (5000 + next_batch, False), 2: (None, True)},
        offsets={0: {"file": "a.ndjson", "line": next_batch}, 2: [1, "x"]},
        parts=shas,
        partitions={(4, p): name for p, name in enumerate(parts)},
        output_rows=3 * next_batch,
    )


def test_commit_then_latest_gives_back_every_field(tmp_path):
    s = store(tmp_path)
    assert s.latest() is None
    committed = commit_one(s, 10)
    found = store(tmp_path).latest()
    assert found == committed
    assert found.id == 1 and found.path == str(tmp_path / "checkpoints" / "ckpt-00000001")
    assert found.fingerprint == fingerprint(QUERY) and found.query == QUERY and found.next_batch == 10
    assert found.watermark == 10_000 and found.output_rows == 30 and found.created_at > 0
    assert found.clocks == {0: (5010, False), 2: (None, True)}
    assert found.offsets == {0: {"file": "a.ndjson", "line": 10}, 2: [1, "x"]}
    assert found.partitions == {(4, 0): "worker-1.state", (4, 1): "worker-2.state"}
    assert set(found.parts) == {"worker-1.state", "worker-2.state"}
    _, ops = _states()
    states = read_part(found.part_path("worker-2.state"), found.parts["worker-2.state"], ops)
    assert list(states) == [(4, 1)] and states[(4, 1)].open_groups > 0
    assert json.loads((Path(found.path) / "manifest.json").read_text())["format"] == FORMAT_VERSION


def test_half_written_checkpoints_are_ignored(tmp_path):
    s = store(tmp_path)
    good = commit_one(s, 5)
    _, parts_only = s.begin()  # parts written, never committed
    write_part(parts_only, "worker-1.state", _states(1)[0])
    _, tmp_only = s.begin()  # the manifest's temporary file, never renamed
    (Path(tmp_only) / "manifest.json.tmp").write_text("{")
    (Path(tmp_only) / ".manifest.json.abc123.tmp").write_text("{")
    assert s.latest() == good and s.skipped == []
    assert s.begin()[0] == 4  # one past the highest directory, committed or not


def test_a_corrupt_newest_part_falls_back_to_the_previous_checkpoint(tmp_path):
    s = store(tmp_path)
    previous = commit_one(s, 5)
    newest = commit_one(s, 9)
    part = Path(newest.part_path("worker-1.state"))
    data = bytearray(part.read_bytes())
    data[-3] ^= 0x01
    part.write_bytes(bytes(data))
    assert s.latest() == previous
    assert s.skipped == ["ckpt-00000002: part worker-1.state: checksum mismatch"]
    os.unlink(part)
    assert s.latest() == previous and s.skipped == ["ckpt-00000002: part worker-1.state: missing"]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda text: text[: len(text) // 2], "manifest.json: not valid JSON"),
        (lambda text: text.replace('"next_batch": 9', '"next_batch": 8'), "manifest.json: checksum mismatch"),
        (lambda text: text.replace('"line": 9', '"line": 90'), "manifest.json: checksum mismatch"),
        (lambda text: "[1, 2]", "manifest.json: not a JSON object"),
    ],
    ids=["bad-json", "changed-batch", "changed-offset", "not-an-object"],
)
def test_a_corrupt_manifest_falls_back_to_the_previous_checkpoint(tmp_path, damage, reason):
    s = store(tmp_path)
    previous = commit_one(s, 5)
    newest = commit_one(s, 9)
    manifest = Path(newest.path) / "manifest.json"
    text = manifest.read_text()
    damaged = damage(text)
    assert damaged != text
    manifest.write_text(damaged)
    assert s.latest() == previous
    assert len(s.skipped) == 1 and s.skipped[0].startswith(f"ckpt-00000002: {reason}")


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    s = store(tmp_path, keep=3)
    stale, _ = s.begin()  # uncommitted, older than what gets committed: dropped
    for batch in range(1, 6):
        commit_one(s, batch)
    names = lambda: sorted(os.listdir(tmp_path / "checkpoints"))  # noqa: E731
    assert names() == ["ckpt-00000004", "ckpt-00000005", "ckpt-00000006"] and stale == 1
    abandoned, directory = s.begin()  # never committed (its writer died)
    write_part(directory, "worker-1.state", _states(1)[0])
    assert commit_one(s, 6).id == abandoned + 1  # a newer commit drops it
    assert names() == ["ckpt-00000005", "ckpt-00000006", "ckpt-00000008"]
    s2 = store(tmp_path, keep=3)
    ids = [s2.begin()[0], s2.begin()[0]]  # 10 is begun before 9 commits: its parts may be being written
    assert ids == [9, 10]
    s2.commit(9, next_batch=1, watermark=None, clocks={}, offsets={}, parts={}, partitions={}, output_rows=0)
    assert names()[-2:] == ["ckpt-00000009", "ckpt-00000010"]  # 10 is newer than the committed 9: kept
    assert s2.latest().id == 9


def test_the_checkpoints_of_another_query_are_refused_with_both_texts(tmp_path):
    commit_one(store(tmp_path), 5)
    other = "\n".join(f"Stage {i}: Filter x > {i}" for i in range(40))
    with pytest.raises(CheckpointError) as info:
        store(tmp_path, other).latest()
    message = str(info.value)
    assert f"checkpoint_dir '{tmp_path}' holds checkpoints of a different query" in message
    assert "Stage 1: Aggregate [k0] TUMBLE" in message  # the checkpointed query
    assert "Stage 19: Filter x > 19" in message and "Stage 20:" not in message and "(20 more lines)" in message
    assert "another checkpoint_dir" in message and "checkpoint_reset" in message and "--fresh" in message
    assert "delete" not in message  # the old advice: deleting a directory loses what a reset archives


def test_commit_refuses_what_it_cannot_restore(tmp_path):
    s = store(tmp_path)
    ckpt_id, _ = s.begin()
    with pytest.raises(CheckpointError, match="state part 'worker-1.state' was not written"):
        s.commit(
            ckpt_id,
            next_batch=1,
            watermark=None,
            clocks={},
            offsets={},
            parts={"worker-1.state": "00"},
            partitions={},
            output_rows=0,
        )
    with pytest.raises(CheckpointError, match="source offsets must be JSON values"):
        s.commit(
            ckpt_id,
            next_batch=1,
            watermark=None,
            clocks={},
            offsets={0: object()},
            parts={},
            partitions={},
            output_rows=0,
        )
    with pytest.raises(CheckpointError, match="was not begun"):
        s.commit(
            ckpt_id + 1, next_batch=1, watermark=None, clocks={}, offsets={}, parts={}, partitions={}, output_rows=0
        )
    s.commit(ckpt_id, next_batch=1, watermark=None, clocks={}, offsets={}, parts={}, partitions={}, output_rows=0)
    with pytest.raises(CheckpointError, match="already committed"):
        s.commit(ckpt_id, next_batch=1, watermark=None, clocks={}, offsets={}, parts={}, partitions={}, output_rows=0)


# ---------------------------------------------------------------- the lock

LOCKER = """
import sys
from executor.recovery.store import CheckpointStore
CheckpointStore(sys.argv[1], "f", "q").lock()
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_locked_checkpoint_dir_is_refused_until_its_process_dies(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(tmp_path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], WAIT)
        assert ready and proc.stdout.readline() == "locked\n", proc.stderr.read() if proc.poll() is not None else ""
        s = store(tmp_path)
        with pytest.raises(CheckpointError) as info:
            s.lock()
        assert str(info.value).startswith(
            f"checkpoint_dir '{tmp_path}' is in use by another running query (pid {proc.pid})"
        )
        proc.kill()
        proc.wait(timeout=WAIT)
        s.lock()  # a dead process's lock is free
        s.unlock()
        s.unlock()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)


def test_two_stores_in_one_process_do_not_share_a_checkpoint_dir(tmp_path):
    first, second = store(tmp_path), store(tmp_path)
    first.lock()
    first.lock()  # already held: nothing to do
    with pytest.raises(CheckpointError, match=f"in use by another running query \\(pid {os.getpid()}\\)"):
        second.lock()
    first.unlock()
    second.lock()
    assert (tmp_path / "LOCK").read_text() == f"{os.getpid()}\n"
    second.unlock()


def test_the_checkpoints_of_a_group_and_of_the_group_sent_ahead_are_gathered_apart(tmp_path):
    """With a group in flight beyond the one ending, workers write parts of two checkpoints at once."""
    from executor.recovery.checkpointing import Checkpointing, checkpoint_part
    from executor.state.clocks import SourceClock

    ckpt = Checkpointing(str(tmp_path / "checkpoints"), QUERY)
    built, _ = _states()
    states = {(4, 0): built[(4, 0)]}
    asked = {after: {w: ckpt.request(w, after) for w in (0, 1)} for after in (9, 19)}  # groups 0-9 and 10-19
    assert asked[9][0] == asked[9][1] and asked[9][0] < asked[19][0]  # one checkpoint per group
    for after, line in ((19, 20), (9, 10)):  # the later group's parts may come in first
        for w in (0, 1):
            id = asked[after][w]
            ckpt.take(
                checkpoint_part(id, w, f"worker-{w}.state", states if w else {}, {0: {"line": line}} if w == 0 else {})
            )
    clocks = {0: SourceClock(delay_ms=None)}
    assert ckpt.commit(9, next_batch=10, watermark=None, clocks=clocks, output_rows=1) == asked[9][0]
    assert ckpt.store.latest().next_batch == 10 and ckpt.store.latest().offsets == {0: {"line": 10}}
    assert ckpt.commit(19, next_batch=20, watermark=None, clocks=clocks, output_rows=2) == asked[19][0]
    assert ckpt.store.latest().next_batch == 20 and ckpt.store.latest().offsets == {0: {"line": 20}}
    ckpt.request(0, 29)
    assert ckpt.commit(29, next_batch=30, watermark=None, clocks=clocks, output_rows=3) is None  # a part missing
    ckpt.request(0, 39)
    ckpt.request(0, 49)
    ckpt.abandon()  # a lost worker: nothing half gathered survives
    assert ckpt.gathering == {} and ckpt.store.latest().next_batch == 20
