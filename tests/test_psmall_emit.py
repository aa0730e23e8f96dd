"""Each batch's output reaches the sink when that batch is done, not when its Drizzle group ends.

Drizzle schedules a group of batches at once; its point is low latency
with small batches, which holds only if batch k's rows are written before
later batches of the same group are worked on. The gated source
(tests/psmall_gated_source.py) reads batch k + 1 only after the sink wrote
batch k, so the order of events in its log shows it on every executor.
The same runs check that the workers report each task's CPU time.
"""

from __future__ import annotations

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.bench.compare import task_cpu_ms
from stream_dsl.connectors import register_connector

import psmall_gated_source
import recording_source

HANG_GUARD_S = 120
BATCHES = 6


AGGREGATE = "SELECT k, COUNT(*) AS n FROM ev GROUP BY k"  # a shuffle: the output comes from reduce tasks
CASES = [("inline", AGGREGATE), ("bsp", AGGREGATE), ("drizzle", AGGREGATE), ("drizzle", "SELECT k FROM ev")]


@pytest.mark.parametrize(("executor", "query"), CASES)
def test_a_batch_is_written_before_the_next_batch_of_its_group_is_read(tmp_path, executor, query):
    register_connector(psmall_gated_source.NAME, "psmall_gated_source")
    batches = [pl.DataFrame({"k": ["a", "b"][: 1 + i % 2], "ts": [i * 1000] * (1 + i % 2)}) for i in range(BATCHES)]
    batches = [b.with_columns(pl.col("ts").cast(pl.Datetime("ms"))) for b in batches]
    log = recording_source.write_script(tmp_path / "script.json", batches)
    ctx = sd.Context(executor=executor, workers=2, group_size=BATCHES)  # one group holds every batch
    ctx.sql(
        "CREATE STREAM ev (k STRING, ts TIMESTAMP) "
        f"WITH (connector = 'gated_recording', script = '{tmp_path / 'script.json'}', realtime = 'false')"
    )

    def write(batch_id: int, frame: pl.DataFrame) -> None:
        recording_source.record(log, "write", batch_id)

    handle = ctx.sql(query).start(sink=write)
    assert handle.await_termination(HANG_GUARD_S)
    happened = recording_source.events(log)
    assert not [p for kind, p in happened if kind == "gave up"], happened
    reads = [i for i, (kind, _) in enumerate(happened) if kind == "read"]
    writes = {p: i for i, (kind, p) in enumerate(happened) if kind == "write"}
    assert len(reads) == BATCHES and sorted(writes) == list(range(BATCHES))
    for batch in range(1, BATCHES):  # batch k's write comes before batch k + 1 is read
        assert writes[batch - 1] < reads[batch], happened
    if executor != "inline":  # the workers report each task's CPU time (what a loaded machine does not inflate)
        progress = handle.progress()
        assert all(m["cpu_ms"] >= 0.0 for p in progress for m in p["stages"].values())
        assert task_cpu_ms(progress) > 0.0
