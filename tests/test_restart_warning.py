"""A restart without a checkpoint that reads its input from the start again says so (executor/query/restart.py,
`warn_of_a_start_over`).

Run twice into the same files sink, an INSERT over files (or the
generator, or in-memory frames) reads everything again and writes the
first run's rows a second time: the README's continuous example did, on
every Ctrl-C and run again. A new run over new input appending after the
last one is allowed (tests/test_exactly_once.py), so this is a warning,
not an error, and the example now keeps a checkpoint directory. With one,
a run resumes where the last stopped: no warning, every row once.
"""

from __future__ import annotations

import logging

import pytest

import stream_dsl as sd
from stream_dsl.connectors import files

EXECUTORS = ["inline", "drizzle", "bsp"]
ROWS = [("a", 5), ("b", 7), ("a", 1)]


def _insert(tmp_path, executor: str, checkpoint_dir: str | None) -> None:
    ctx = sd.Context(executor=executor, workers=2, checkpoint_dir=checkpoint_dir)
    ctx.sql(
        f"CREATE STREAM pay (user STRING, amount BIGINT) WITH (connector = 'files', path = '{tmp_path / 'in'}', "
        "format = 'ndjson', max_files_per_batch = '1')"
    )
    ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{tmp_path / 'out'}', format = 'ndjson')")
    assert ctx.sql("INSERT INTO out SELECT user, amount FROM pay").await_termination(120)


def _start_overs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "stream_dsl.query" and "read from the start" in r.getMessage()]


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "in").mkdir()
    for k, (user, amount) in enumerate(ROWS):
        (tmp_path / "in" / f"p{k}.ndjson").write_text(f'{{"user": "{user}", "amount": {amount}}}\n')
    return tmp_path


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_second_run_without_a_checkpoint_warns_that_it_reads_from_the_start(inputs, caplog, executor):
    caplog.set_level(logging.INFO, logger="stream_dsl")
    _insert(inputs, executor, None)
    assert _start_overs(caplog) == []  # a new sink: nothing to write twice
    _insert(inputs, executor, None)
    [record] = _start_overs(caplog)
    assert record.levelname == "WARNING"
    facts = record.sd  # type: ignore[attr-defined]
    assert (facts["streams"], facts["first_batch"], facts["sink"]) == (["pay"], len(ROWS), "out")
    assert record.getMessage().startswith(
        f"sink 'out' holds batches up to {len(ROWS) - 1} from an earlier run, and without a checkpoint stream 'pay' "
        "is read from the start again"
    )
    written = files.read_committed(str(inputs / "out")).rows()
    assert sorted(written) == sorted(ROWS * 2)  # what the warning says happened


@pytest.mark.parametrize("executor", EXECUTORS)
def test_with_a_checkpoint_a_second_run_resumes_silently_and_writes_nothing_twice(inputs, caplog, executor):
    caplog.set_level(logging.INFO, logger="stream_dsl")
    checkpoints = str(inputs / "ckpt")
    _insert(inputs, executor, checkpoints)
    _insert(inputs, executor, checkpoints)
    assert _start_overs(caplog) == []
    assert sorted(files.read_committed(str(inputs / "out")).rows()) == sorted(ROWS)


def test_sources_that_keep_their_readers_progress_do_not_claim_to_replay():
    """The sources whose restarts resume by themselves, or that never replay, leave the flag out."""
    from stream_dsl.connectors.base import replays_from_start
    from stream_dsl.connectors.files import FileSource
    from stream_dsl.connectors.generator import GeneratorSource
    from stream_dsl.connectors.kafka.source import KafkaSource
    from stream_dsl.connectors.memory import MemorySource
    from stream_dsl.connectors.redis_streams import RedisSource
    from stream_dsl.connectors.socket_source import SocketSource

    assert [replays_from_start(c) for c in (FileSource, GeneratorSource, MemorySource)] == [True] * 3
    assert [replays_from_start(c) for c in (KafkaSource, RedisSource, SocketSource)] == [False] * 3
