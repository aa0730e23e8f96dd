"""What a small ndjson batch's map task keeps from one batch to the next (docs/performance.md, "The small ndjson
map task, once more").

What must hold: a broadcast join's compiled step makes its table side lazy once per table frame, not once per
batch, and a new table frame (another query's, a refreshed one) is joined, never the one kept; and the ndjson
read's unbuffered start (`ndjson_deferred._start`) is the file's first SNIFF_BYTES, or all of it, however short
the raw reads, with the size of the file; and a map output split in two partitions by one mask and its
negation is what `partition_by` gives.
"""

from __future__ import annotations

import io
import json

import polars as pl

from executor import kernels
from optimizer.physical.stages import BroadcastJoinOp
from stream_dsl.connectors import ndjson_deferred
from stream_dsl.ir.types import DataType


def test_a_broadcast_join_makes_its_table_lazy_once_per_table_and_joins_a_new_table(monkeypatch):
    op = BroadcastJoinOp(
        "t", None, "inner", ("k",), ("k",), (DataType.BIGINT,), (("stream", "x", "x"), ("table", "v", "v"))
    )  # type: ignore[arg-type]  # the table's plan: the step never reads it
    step = kernels.compile_pipeline([op]).steps[0]
    first = kernels.prepare_table(op, pl.DataFrame({"k": [1, 2], "v": ["a", "b"]}))
    second = kernels.prepare_table(op, pl.DataFrame({"k": [1, 2], "v": ["y", "z"]}))
    made: list[int] = []
    lazy = pl.DataFrame.lazy

    def counted(self: pl.DataFrame) -> pl.LazyFrame:
        if self is first or self is second:
            made.append(1 if self is first else 2)
        return lazy(self)

    monkeypatch.setattr(pl.DataFrame, "lazy", counted)
    stream = pl.DataFrame({"k": [2, 1, 3], "x": [10, 20, 30]})
    for _ in range(3):  # batches
        assert step(stream.lazy(), {"t": first}).collect().rows() == [(10, "b"), (20, "a")]
    assert made == [1]  # once, not per batch
    assert step(stream.lazy(), {"t": second}).collect().rows() == [(10, "z"), (20, "y")]
    assert step(stream.lazy(), {"t": second}).collect().rows() == [(10, "z"), (20, "y")]
    assert step(stream.lazy(), {"t": first}).collect().rows() == [(10, "b"), (20, "a")]
    assert made == [1, 2, 1]


class Trickle(io.RawIOBase):
    """A raw file that gives at most `step` bytes a read, as a pipe or a network file may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.at, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        n = min(len(buffer), self.step, len(self.data) - self.at)
        buffer[:n] = self.data[self.at : self.at + n]
        self.at += n
        return n


def test_the_start_of_a_file_is_its_prefix_or_all_of_it_however_short_the_reads(tmp_path):
    line = json.dumps({"k": "a" * 100, "x": 1}).encode() + b"\n"
    for size in (0, 1, len(line), ndjson_deferred.SNIFF_BYTES - 1, ndjson_deferred.SNIFF_BYTES, 3 << 16):
        data = (line * (size // len(line) + 1))[:size]
        for step in (1000, 1 << 20):
            assert ndjson_deferred._start(Trickle(data, step)) == data[: ndjson_deferred.SNIFF_BYTES]
        path = tmp_path / f"{size}.ndjson"
        path.write_bytes(data)
        text = ndjson_deferred._text(str(path))
        if size == 0:
            assert text is None
        else:
            assert text is not None and text[1] == data[: ndjson_deferred.SNIFF_BYTES] and text[2] == size
            if size < ndjson_deferred.SNIFF_BYTES:  # read whole: polars reads it from memory
                assert isinstance(text[0], io.BytesIO) and text[0].getvalue() == data
            else:
                assert text[0] == str(path)
    long_first = json.dumps({"k": "a" * (1 << 17)}).encode() + b"\n" + line  # a first line past the prefix
    path = tmp_path / "long.ndjson"
    path.write_bytes(long_first)
    assert ndjson_deferred._text(str(path)) == (str(path), long_first, len(long_first))


def test_a_split_in_two_partitions_is_partition_bys(monkeypatch):
    from optimizer.physical.stages import PARTITION_COLUMN

    for keys in ([0], [1], [0, 0, 0], [1, 1], [1, 0, 1, 1, 0], [0, 1] * 20):
        frame = pl.DataFrame(
            {"x": list(range(len(keys))), PARTITION_COLUMN: keys, "s": [str(k) for k in keys]},
            schema={"x": pl.Int64, PARTITION_COLUMN: pl.UInt32, "s": pl.String},
        )
        by_masks = kernels.split_partitions(frame)
        with monkeypatch.context() as patch:
            patch.setattr(kernels, "SPLIT_BY_MASKS", 0)
            by_partition_by = kernels.split_partitions(frame)
        assert list(by_masks) == sorted(by_partition_by), keys
        assert all(by_masks[k].equals(part) for k, part in by_partition_by.items()), keys
