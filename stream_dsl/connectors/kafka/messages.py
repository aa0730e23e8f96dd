"""Kafka messages → rows: the value decoded as json or csv (dead letters named by topic:partition:offset),
plus the metadata columns a stream may declare (`kafka_partition`, `kafka_offset`, `kafka_timestamp`,
`kafka_key`)."""

from __future__ import annotations

from typing import Any

import polars as pl

from stream_dsl.connectors.base import DeadLetter
from stream_dsl.connectors.decode import empty_frame
from stream_dsl.connectors.decode_csv import CsvOptions, decode_csv
from stream_dsl.connectors.decode_ndjson import decode_ndjson
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType, Schema

METADATA = {
    "kafka_partition": DataType.BIGINT,
    "kafka_offset": DataType.BIGINT,
    "kafka_timestamp": DataType.TIMESTAMP,
    "kafka_key": DataType.STRING,
}

Part = tuple[str, int]


def part_name(part: Part) -> str:
    return f"{part[0]}:{part[1]}"


def parse_part(text: str) -> Part:
    topic, _, partition = text.rpartition(":")
    return topic, int(partition)


def _values_only(schema: Schema) -> Schema:
    return Schema(tuple(f for f in schema.fields if f.name not in METADATA))


def decode_messages(
    messages: list[Any], schema: Schema, definition: SourceDef, fmt: str, what: str
) -> tuple[pl.DataFrame, list[DeadLetter], list[str]]:
    """The good rows in `schema`, the dead letters, and each row's partition ('topic:partition').

    One message is one line (newlines inside become spaces); a blank value is skipped.
    """
    if not messages:
        return empty_frame(schema), [], []
    lines = [(m.value() or b"").replace(b"\r", b" ").replace(b"\n", b" ") for m in messages]
    data = b"\n".join(lines)
    values, full = _values_only(schema), _values_only(definition.schema)
    if fmt == "csv":
        decoded = decode_csv(
            data, values, source=definition.name, origin="kafka", options=CsvOptions(header=False), full_schema=full
        )
    else:
        decoded = decode_ndjson(data, values, source=definition.name, origin="kafka", full_schema=full)
    bad: set[int] = set()
    letters: list[DeadLetter] = []
    for letter in decoded.dead_letters:
        line = int(letter.position.rsplit(":", 1)[1])
        bad.add(line)
        m = messages[line - 1]
        letters.append(
            DeadLetter(letter.source, f"{m.topic()}:{m.partition()}:{m.offset()}", letter.raw, letter.reason)
        )
    kept = [m for n, (m, line) in enumerate(zip(messages, lines), start=1) if n not in bad and line.strip()]
    frame = decoded.frame
    if frame.height != len(kept):
        raise ConnectorError(f"{what}: decoded {frame.height} rows from {len(kept)} messages")
    names: dict[tuple[str, int], str] = {}
    parts = [names.get(k) or names.setdefault(k, part_name(k)) for k in ((m.topic(), m.partition()) for m in kept)]
    return _with_metadata(frame, kept, schema), letters, parts


def _with_metadata(frame: pl.DataFrame, kept: list[Any], schema: Schema) -> pl.DataFrame:
    wanted = [c for c in schema.names if c in METADATA]
    if not wanted:
        return frame
    values = {
        "kafka_partition": lambda: pl.Series([m.partition() for m in kept], dtype=pl.Int64),
        "kafka_offset": lambda: pl.Series([m.offset() for m in kept], dtype=pl.Int64),
        "kafka_timestamp": lambda: pl.Series([m.timestamp()[1] for m in kept], dtype=pl.Int64).cast(pl.Datetime("ms")),
        "kafka_key": lambda: pl.Series(
            [None if m.key() is None else m.key().decode("utf-8", "replace") for m in kept], dtype=pl.String
        ),
    }
    return frame.with_columns([values[c]().cast(schema.dtype(c).polars).alias(c) for c in wanted]).select(
        list(schema.names)
    )
