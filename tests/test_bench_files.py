"""The files source's benchmark commands: `bench watch` and `bench scheduling --source files`."""

from __future__ import annotations

import io
import json
import re

import pytest

from stream_dsl.cli import main as cli


def call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_bench_watch_prints_an_idle_batch_per_count(tmp_path):
    code, out, err = call(
        "bench", "watch", "--files", "20,40", "--seconds", "0.3", "--executor", "inline", "--workers", "1",
        "--json", str(tmp_path / "w.json"),
    )  # fmt: skip
    assert code == 0, err
    rows = re.findall(r"^ +([\d,]+) +([\d.]+) +- +([\d,]+) +[\d.]+ +[\d.]+$", out, re.M)  # inline: no task CPU
    assert [r[0] for r in rows] == ["20", "40"] and all(int(r[2]) > 0 for r in rows), out
    assert [m["files"] for m in json.loads((tmp_path / "w.json").read_text())["watch"]] == [20, 40]


@pytest.mark.slow  # starts three sets of workers; the command's other options run in test_bench.py
def test_bench_scheduling_reads_the_batches_from_files(tmp_path):
    code, out, err = call(
        "bench", "scheduling", "--source", "files", "--iterations", "4", "--rows-per-batch", "5",
        "--group-sizes", "2", "--repeat", "1", "--warmup", "0", "--json", str(tmp_path / "s.json"),
    )  # fmt: skip
    assert code == 0, err
    assert "from parquet files, one per batch" in out.splitlines()[0]
    for name in ("bsp", "drizzle group 2"):
        assert re.search(rf"^{re.escape(name)} +[\d.]+ +[\d.]+ +[\d.]+ +\d+", out, re.M), out
    assert json.loads((tmp_path / "s.json").read_text())["source"] == "files"
