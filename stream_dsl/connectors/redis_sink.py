"""The `redis` sink (XADD, exactly once per batch id) and `read_stream`, which reads results back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import polars as pl

from stream_dsl.connectors.files_sink import for_text_format
from stream_dsl.connectors.options import as_int, check_keys
from stream_dsl.connectors.option_specs import Option, option_names
from stream_dsl.connectors.redis_client import (
    DEFAULT_URL,
    FORMATS,
    Retrier,
    connect,
    entry_text,
    redis_errors,
    required_option,
    retry_seconds_option,
    stream_format,
)
from stream_dsl.connectors.upserts import UPSERT, fold_changes
from stream_dsl.ir.column_names import NULL_ROW_FIELD
from stream_dsl.ir.definitions import SinkDef
from stream_dsl.secrets import mask

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

SINK_SPECS = (
    Option("url", "string", "the Redis server", default=DEFAULT_URL),
    Option("stream", "string", "the stream XADD appends to", required=True),
    Option("format", "choice", "one JSON field per entry, or one field per column", default="json", choices=FORMATS),
    Option("field", "string", "json: the entry's field", default="data"),
    Option("maxlen", "int", "trim the stream to about this many entries", minimum=1),
    Option("retry_seconds", "seconds", "how long to retry a lost connection", default="30"),
)
SINK_OPTIONS = option_names(SINK_SPECS)
_NULL_ROW_FIELD = NULL_ROW_FIELD  # XADD needs a field: a row whose columns are all NULL gets this one


class RedisSink:
    """Appends each batch's rows to a stream once per batch id (see `redis_streams`' module doc).

    A changelog comes as upsert records (`upserts`): each entry carries the `op` field; `read_table` folds them.
    """

    writes = UPSERT

    def __init__(self, definition: SinkDef) -> None:
        what = f"sink '{definition.name}'"
        check_keys(definition.options, SINK_OPTIONS, what=what)
        self.definition = definition
        self.url = definition.option("url") or DEFAULT_URL
        self.stream = required_option(definition, "stream", what)
        self.format = stream_format(definition.option("format"), what)
        self.field = definition.option("field") or "data"
        self.maxlen = as_int(definition.option("maxlen"), key="maxlen", what=what, minimum=1)
        self.retrier = Retrier(what, mask(self.url), retry_seconds_option(definition.option("retry_seconds"), what))
        self._client = connect(self.url, what)

    @property
    def committed_key(self) -> str:
        return f"{self.stream}:committed"

    def _entries(self, frame: pl.DataFrame) -> list[dict[str, str]]:
        out = for_text_format(frame, "ndjson")
        if self.format == "json":
            text = out.write_ndjson()
            return [{self.field: line} for line in text.splitlines() if line]
        strings = out.with_columns(pl.all().cast(pl.String))
        rows = [{k: v for k, v in row.items() if v is not None} for row in strings.iter_rows(named=True)]
        return [row or {_NULL_ROW_FIELD: "1"} for row in rows]

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        entries = self._entries(frame)
        self.retrier("adding a batch", lambda: self._add(batch_id, entries))

    def _add(self, batch_id: int, entries: list[dict[str, str]]) -> None:
        key, member = self.committed_key, str(batch_id)
        with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    if pipe.hexists(key, member):
                        return  # a replay of a committed batch: it is in the stream already
                    pipe.multi()
                    for entry in entries:
                        fields = cast("dict[FieldT, EncodableT]", entry)  # redis-py wants a dict of its own key types
                        if self.maxlen is None:
                            pipe.xadd(self.stream, fields)
                        else:
                            pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
                    pipe.hset(key, member, len(entries))
                    pipe.execute()
                    return
                except redis_errors.WatchError:
                    continue

    def last_batch_id(self) -> int | None:
        """The newest batch id recorded in `<stream>:committed`."""
        keys = self.retrier("reading committed batches", lambda: self._client.hkeys(self.committed_key))
        ids = [int(k) for k in keys if entry_text(k).isdigit()]
        return max(ids) if ids else None

    def committed_batches(self) -> list[int]:
        keys = self.retrier("reading committed batches", lambda: self._client.hkeys(self.committed_key))
        return sorted(int(k) for k in keys if entry_text(k).isdigit())

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:
            pass


# ---------------------------------------------------------------- reading results back


def read_stream(url: str, stream: str, *, field: str | None = "data") -> list[dict[str, Any]]:
    """Every entry of `stream` as a dict: the JSON record in `field`, or the entry's fields (field=None)."""
    client = connect(url, f"stream '{stream}'")
    try:
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(stream))  # raw replies
    finally:
        client.close()
    if field is None:
        return [{entry_text(k): entry_text(v) for k, v in fields.items()} for _, fields in entries]
    key = field.encode()
    return [json.loads(fields[key]) for _, fields in entries if key in fields]


def read_table(url: str, stream: str, keys: list[str], *, field: str | None = "data") -> pl.DataFrame:
    """The table a changelog's upsert records in `stream` describe: the last entry per key (`keys`), deleted
    keys left out (`upserts.fold_changes`). Values as the entries hold them (JSON values, or text: field=None)."""
    records = read_stream(url, stream, field=field)
    if not records:
        return pl.DataFrame()
    return fold_changes(pl.DataFrame(records, infer_schema_length=None), keys)
