"""Where bad records go: the `dead_letter` option every source takes.

A record a source cannot read (bad JSON, invalid UTF-8, a value that does
not convert to the declared type) becomes a `DeadLetter` (source, position,
raw text, reason); the query goes on, and progress() counts it. Then it is
written where the source's `dead_letter` option says:

- `'none'`: only counted (and kept on the QueryHandle, `dead_letters`).
- the name of a sink in the catalog: each batch's dead letters as one
  frame (source, position, raw, reason, batch_id) written to that sink
  under the batch id, so they are exactly-once like any output.
- a file path (one containing '/' or ending in .ndjson, .json or .jsonl):
  appended as ndjson, one JSON object per record with the keys source,
  position, raw, reason and batch_id. A path ending in '/' (or an existing
  directory) means `<dir>/<query or source name>.ndjson`.

Default, when a continuous query (start(), INSERT INTO) has no option:
`<base>/_dead_letter/<query or source name>.ndjson`, where <base> is the
checkpoint directory if there is one, else the sink's directory if the
query writes to a files sink (the files source skips names starting with
'_'). The file appears with the first bad record. A query with neither has
no place the user gave it to write in: its bad records are counted, kept on
the QueryHandle and logged (`observe/log.py`), as with 'none', never written
into the current directory. `collect()` has no default target either: its
bad records are only written when the option is set, so reading data leaves
no files behind; it logs one warning when it returns (how many, where they
went, the latest: `describe_target`, `observe/log.py`).

Dead letters of a batch are written before the batch commits its sources
(see `base.commit_source`), so a bad record is never acknowledged unseen.

A row a Python UDF failed on is a dead letter too, with the source
'udf:<name>' (stream_dsl/ir/udf_polars.py); it goes to the target of the
query's first source that has one (docs/udfs.md).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

import polars as pl

from stream_dsl.connectors.base import DeadLetter, Sink
from stream_dsl.errors import ConnectorError, did_you_mean
from stream_dsl.connectors.file_writes import append_line, error_text, with_retries
from stream_dsl.ir.definitions import SourceDef

NONE = "none"
DEFAULT_DIR = "_dead_letter"
_FILE_SUFFIXES = (".ndjson", ".json", ".jsonl")
SCHEMA = {"source": pl.String, "position": pl.String, "raw": pl.String, "reason": pl.String, "batch_id": pl.Int64}


def as_records(batch_id: int, letters: Sequence[DeadLetter]) -> list[dict[str, Any]]:
    """Dead letters as the JSON objects (and frame rows) they are written as."""
    return [
        {"source": d.source, "position": d.position, "raw": d.raw, "reason": d.reason, "batch_id": batch_id}
        for d in letters
    ]


def as_frame(batch_id: int, letters: Sequence[DeadLetter]) -> pl.DataFrame:
    return pl.DataFrame(as_records(batch_id, letters), schema=SCHEMA)


# ---------------------------------------------------------------- targets


class Target(Protocol):
    def write(self, batch_id: int, letters: Sequence[DeadLetter]) -> None: ...

    def close(self) -> None: ...


class Discard:
    """'none': dead letters are only counted."""

    def write(self, batch_id: int, letters: Sequence[DeadLetter]) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class NdjsonFile:
    """Appends one JSON object per dead letter to `path` (its directory made on first use)."""

    path: str

    def write(self, batch_id: int, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in as_records(batch_id, letters))
        data = text.encode("utf-8", errors="backslashreplace")
        try:  # 0600 and never through a planted symlink: dead letters hold raw input (file_writes)
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with_retries(lambda: append_line(self.path, data, fsync=False))
        except OSError as e:
            raise ConnectorError(f"cannot write dead letters to '{self.path}': {error_text(e)}") from None

    def close(self) -> None:
        pass


@dataclass
class SinkTarget:
    """Dead letters as a frame per batch, written to a sink under the batch id."""

    name: str
    sink: Sink

    def write(self, batch_id: int, letters: Sequence[DeadLetter]) -> None:
        if letters:
            self.sink.write(batch_id, as_frame(batch_id, letters))

    def close(self) -> None:
        self.sink.close()


def describe_target(target: Target | None) -> str:
    """Where a source's dead letters went, for people (None: collect() without the option kept them nowhere)."""
    if target is None:
        return "not kept: a stream's dead_letter option keeps them"
    if isinstance(target, Discard):
        return "counted only: dead_letter = 'none'"
    if isinstance(target, NdjsonFile):
        return f"written to {target.path}"
    if isinstance(target, SinkTarget):
        return f"written to sink '{target.name}'"
    return "written where the stream's dead_letter option says"


# ---------------------------------------------------------------- routing


class DeadLetterRouter:
    """Each source's dead letters to its target; one write per target and batch."""

    def __init__(self, targets: dict[str, Target] | None = None) -> None:
        self.targets = dict(targets or {})

    def target_of(self, source: str) -> Target | None:
        """Where `source`'s dead letters go; a Python UDF's ('udf:<name>') go to the first source's target."""
        target = self.targets.get(source)
        if target is None and source.startswith("udf:"):
            target = next(iter(self.targets.values()), None)
        return target

    def write(self, batch_id: int, letters: Iterable[DeadLetter]) -> None:
        grouped: dict[int, tuple[Target, list[DeadLetter]]] = {}
        for letter in letters:
            target = self.target_of(letter.source)
            if target is None:
                continue
            grouped.setdefault(id(target), (target, []))[1].append(letter)
        for target, batch in grouped.values():
            target.write(batch_id, batch)

    def close(self) -> None:
        seen: set[int] = set()
        for target in self.targets.values():
            if id(target) not in seen:
                seen.add(id(target))
                try:
                    target.close()
                except Exception:
                    pass


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name) or "query"


def _looks_like_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.lower().endswith(_FILE_SUFFIXES) or os.path.isdir(value)


def default_path(
    source: str, *, checkpoint_dir: str | None = None, sink: Any = None, query_name: str | None = None
) -> str | None:
    """Where a continuous query's dead letters go without a `dead_letter` option (see the module doc); None
    when the query names no directory of its own (no checkpoints, no files sink)."""
    from stream_dsl.connectors.files_sink import FileSink

    if checkpoint_dir:
        base = checkpoint_dir
    elif isinstance(sink, FileSink):
        base = sink.path
    else:
        return None
    return os.path.join(os.path.expanduser(base), DEFAULT_DIR, _safe_name(query_name or source) + ".ndjson")


def _file_target(value: str, source: str, query_name: str | None) -> str:
    path = os.path.expanduser(value)
    if value.endswith(("/", os.sep)) or os.path.isdir(path):
        return os.path.join(path, _safe_name(query_name or source) + ".ndjson")
    return path


def _catalog_sinks(catalog: Any) -> dict[str, Any]:
    return dict(getattr(catalog, "sinks", {}) or {}) if catalog is not None else {}


def resolve_target(
    definition: SourceDef,
    *,
    catalog: Any = None,
    checkpoint_dir: str | None = None,
    sink: Any = None,
    query_name: str | None = None,
    use_default: bool = True,
    opened: dict[str, Target] | None = None,
) -> Target | None:
    """The target of one source's dead letters; None when there is none (collect() without the option).

    `opened` shares targets between sources naming the same file or sink.
    """
    from stream_dsl.connectors import open_sink

    opened = {} if opened is None else opened
    value = definition.option("dead_letter")
    if value is None or not value.strip():
        if not use_default:
            return None
        path = default_path(definition.name, checkpoint_dir=checkpoint_dir, sink=sink, query_name=query_name)
        if path is None:
            return opened.setdefault("none", Discard())
        key = "file:" + os.path.abspath(path)
        return opened.setdefault(key, NdjsonFile(key[5:]))
    value = value.strip()
    if value.lower() == NONE:
        return opened.setdefault("none", Discard())
    sinks = _catalog_sinks(catalog)
    by_lower = {name.lower(): name for name in sinks}
    if value.lower() in by_lower:
        name = by_lower[value.lower()]
        key = "sink:" + name
        if key not in opened:
            opened[key] = SinkTarget(name, open_sink(sinks[name]))
        return opened[key]
    if _looks_like_path(value):
        key = "file:" + os.path.abspath(_file_target(value, definition.name, query_name))
        return opened.setdefault(key, NdjsonFile(key[5:]))
    raise ConnectorError(
        f"source '{definition.name}': dead_letter '{value}' is neither a sink in the catalog"
        f"{did_you_mean(value, sinks)} nor a file path (give a path ending in .ndjson or containing '/', "
        f"or 'none' to only count bad records)"
    )


def open_dead_letters(
    sources: Iterable[SourceDef],
    *,
    catalog: Any = None,
    checkpoint_dir: str | None = None,
    sink: Any = None,
    query_name: str | None = None,
    use_default: bool = True,
) -> DeadLetterRouter:
    """The router for a query's sources: what executors call when a query opens.

    `sink` is the query's output sink (a files sink puts the default file
    beside its output); `use_default=False` (collect()) routes only sources
    whose option is set.
    """
    opened: dict[str, Target] = {}
    targets: dict[str, Target] = {}
    try:
        for definition in sources:
            target = resolve_target(
                definition,
                catalog=catalog,
                checkpoint_dir=checkpoint_dir,
                sink=sink,
                query_name=query_name,
                use_default=use_default,
                opened=opened,
            )
            if target is not None:
                targets[definition.name] = target
    except BaseException:
        DeadLetterRouter(opened).close()
        raise
    return DeadLetterRouter(targets)


def read_dead_letters(path: str) -> list[dict[str, Any]]:
    """The records of an ndjson dead-letter file (a missing file: none)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
