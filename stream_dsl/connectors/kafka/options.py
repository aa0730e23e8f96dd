"""The kafka source's WITH options, checked (see `source.py` for what each one means)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from stream_dsl.connectors.kafka.common import DEFAULT_BOOTSTRAP, required, retry_seconds, topic_list
from stream_dsl.connectors.kafka.messages import METADATA, parse_part, part_name
from stream_dsl.connectors.kafka.progress import DEFAULT_TOPIC as PROGRESS_TOPIC
from stream_dsl.connectors.options import as_bool, as_int, check_keys
from stream_dsl.connectors.option_specs import Option, option_names
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType

FORMATS = ("json", "csv")
SOURCE_SPECS = (
    Option("bootstrap_servers", "string", "the brokers", default=DEFAULT_BOOTSTRAP),
    Option("topic", "string", "the topic (or topics, comma-separated) read", required=True),
    Option("group", "string", "the consumer group offsets are committed to (default: stream-dsl-<name>)"),
    Option("partitions", "string", "read only these partitions (numbers or topic:n, comma-separated)"),
    Option("start", "string", "where a new group starts: earliest, latest or a timestamp", default="earliest"),
    Option("format", "choice", "the messages' format", default="json", choices=FORMATS),
    Option("batch_size", "int", "messages read per call", default="10000", minimum=1),
    Option("bounded", "bool", "stop at the offsets present at start", default="false"),
    Option("retry_seconds", "seconds", "how long to retry an unreachable broker", default="30"),
    Option("progress_topic", "string", "the topic the source's progress is kept in", default=PROGRESS_TOPIC),
)
SOURCE_OPTIONS = option_names(SOURCE_SPECS)


def _start(value: str | None, what: str) -> str | int:
    text = (value or "earliest").strip().lower()
    if text in ("earliest", "latest"):
        return text
    if text.isdigit():
        return int(text)
    try:
        stamp = pl.Series([value]).str.to_datetime(time_unit="ms", time_zone="UTC")
        return int(stamp.dt.epoch("ms").item())
    except Exception:
        raise ConnectorError(
            f"{what}: option start must be 'earliest', 'latest' or a timestamp (epoch ms or ISO-8601), got '{value}'"
        ) from None


@dataclass(frozen=True, slots=True)
class SourceOptions:
    bootstrap: str
    topics: tuple[str, ...]
    group: str
    partitions: tuple[str, ...] | None
    start: str | int
    format: str
    batch_size: int
    bounded: bool
    retry_seconds: float
    progress_topic: str

    @classmethod
    def parse(cls, definition: SourceDef) -> "SourceOptions":
        what = f"source '{definition.name}'"
        check_keys(definition.options, SOURCE_OPTIONS, what=what)
        fmt = (definition.option("format") or "json").strip().lower()
        if fmt not in FORMATS:
            raise ConnectorError(
                f"{what}: option format must be one of {', '.join(FORMATS)}, got '{definition.option('format')}'"
            )
        topics = topic_list(required(definition, "topic", what))
        chosen = definition.option("partitions")
        parts: tuple[str, ...] | None = None
        if chosen is not None:
            try:
                parts = tuple(
                    p if ":" in p else part_name((topics[0], int(p)))
                    for p in (x.strip() for x in chosen.split(","))
                    if p
                )
                for p in parts:
                    parse_part(p)
            except ValueError:
                raise ConnectorError(f"{what}: option partitions must list partition numbers, got '{chosen}'") from None
        for column, dtype in METADATA.items():
            if (
                column in definition.schema
                and definition.schema.dtype(column) is not dtype
                and not (dtype is DataType.BIGINT and definition.schema.dtype(column) is DataType.INT)
            ):
                raise ConnectorError(f"{what}: metadata column {column} must be {dtype.value}")
        return cls(
            bootstrap=(definition.option("bootstrap_servers") or DEFAULT_BOOTSTRAP).strip(),
            topics=topics,
            group=definition.option("group") or f"stream-dsl-{definition.name}",
            partitions=parts,
            start=_start(definition.option("start"), what),
            format=fmt,
            batch_size=as_int(definition.option("batch_size", "10000"), key="batch_size", what=what, minimum=1)
            or 10000,
            bounded=as_bool(definition.option("bounded"), key="bounded", what=what),
            retry_seconds=retry_seconds(definition.option("retry_seconds"), what),
            progress_topic=definition.option("progress_topic") or PROGRESS_TOPIC,
        )
