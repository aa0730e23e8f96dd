"""Decode ndjson and csv text, or any polars frame, into a declared schema.

Records that cannot be read (bad JSON, invalid UTF-8, a value of the wrong
type, an unparseable timestamp) become dead letters with their position and
a reason; the good records still come through. The fast path hands the whole
input to polars in one call; only when that raises do we look at records one
by one, in chunks, so one bad line costs a chunk of per-line work, not a file.

TIMESTAMP columns accept epoch milliseconds (numbers or digit strings) or
ISO-8601 text, with or without an offset (converted to UTC), and come out as
`Datetime("ms")`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import polars as pl

from stream_dsl.connectors.base import DeadLetter
from stream_dsl.ir.types import DataType, Schema

CHUNK_RECORDS = 4096
_MS = pl.Datetime("ms")
_INT_RANGE = {DataType.BIGINT: (-(2**63), 2**63 - 1), DataType.INT: (-(2**31), 2**31 - 1)}

# Where a row came from, for the dead letters of rows found bad after parsing.
Record = tuple[int, bytes]  # (1-based line number, raw bytes)


@dataclass(frozen=True, slots=True)
class Decoded:
    """Good rows in the declared schema, and the records that could not be read."""

    frame: pl.DataFrame
    dead_letters: tuple[DeadLetter, ...] = ()


def empty_frame(schema: Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema.to_polars())


def _raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def _short(value: object, *, as_json: bool = False) -> str:
    text = json.dumps(value) if as_json or not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


# ----------------------------------------------------------------- conversion


def _epoch_or_iso(text: pl.Series) -> pl.Series:
    """Strings holding epoch milliseconds or ISO-8601 timestamps → Datetime("ms"); null where neither."""
    name = text.name
    digits = text.str.contains(r"^\s*[+-]?\d+\s*$")
    n_digits, n_values = digits.sum(), len(text) - text.null_count()
    epoch = text.str.strip_chars().cast(pl.Int64, strict=False).cast(_MS) if n_digits else None
    if n_digits == n_values:
        return epoch if epoch is not None else text.cast(_MS, strict=False)
    iso = text.str.strip_chars().str.replace(" ", "T", literal=True)
    parsed = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="ms", strict=False)
    result = parsed if epoch is None else pl.select(pl.coalesce(epoch, parsed)).to_series()
    if len(text) - result.null_count() == n_values:
        return result.alias(name)
    with_zone = (iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="ms", strict=False)
                 .dt.convert_time_zone("UTC").dt.replace_time_zone(None))
    minutes = iso.str.to_datetime("%Y-%m-%dT%H:%M", time_unit="ms", strict=False)
    date = iso.str.to_datetime("%Y-%m-%d", time_unit="ms", strict=False)
    return pl.select(pl.coalesce(result, with_zone, minutes, date)).to_series().alias(name)


def _to_timestamp(s: pl.Series) -> pl.Series:
    if isinstance(s.dtype, pl.Datetime):
        if s.dtype.time_zone is not None:
            s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return s.cast(_MS)
    if s.dtype == pl.Date:
        return s.cast(_MS)
    if s.dtype.is_integer():
        return s.cast(pl.Int64, strict=False).cast(_MS)
    if s.dtype == pl.String:
        return _epoch_or_iso(s)
    if s.dtype == pl.Null:
        return s.cast(_MS)
    return _epoch_or_iso(s.cast(pl.String, strict=False))


def _convert(s: pl.Series, dtype: DataType) -> pl.Series:
    """`s` as `dtype`, null where a value does not convert (callers compare null masks)."""
    target = dtype.polars
    if s.dtype == target:
        return s
    if dtype is DataType.TIMESTAMP:
        return _to_timestamp(s)
    if s.dtype == pl.String:
        text = s.str.strip_chars()
        if dtype is DataType.BOOLEAN:
            lowered = text.str.to_lowercase()
            return (pl.select(pl.when(lowered == "true").then(True).when(lowered == "false").then(False)
                              .otherwise(None)).to_series().alias(s.name))
        return text.cast(target, strict=False)
    if dtype is DataType.STRING and isinstance(s.dtype, pl.Datetime):
        return s.dt.to_string("%Y-%m-%dT%H:%M:%S%.3f")
    return s.cast(target, strict=False)


def _default_locate(frame: pl.DataFrame) -> Callable[[int], Record]:
    def locate(i: int) -> Record:
        return i + 1, frame.slice(i, 1).write_ndjson().strip().encode()
    return locate


def conform(frame: pl.DataFrame, schema: Schema, *, source: str, origin: str,
            locate: Callable[[int], Record] | None = None, row_label: str = "row") -> Decoded:
    """Cast `frame` to `schema` (missing columns are NULL); rows with a value that does not convert are dead.

    `locate(i)` gives the line number and raw bytes of row i for its dead letter;
    by default the position is the row number and the raw text the row as JSON.
    """
    columns: list[pl.Series] = []
    bad_reason: dict[int, str] = {}
    for field in schema:
        if field.name not in frame.columns:
            columns.append(pl.Series(field.name, [None] * frame.height, dtype=field.dtype.polars))
            continue
        raw = frame.get_column(field.name)
        converted = _convert(raw, field.dtype)
        failed = converted.is_null() & raw.is_not_null()
        if failed.any():
            for i in failed.arg_true().to_list():
                bad_reason.setdefault(i, f"column '{field.name}': cannot convert '{_short(raw[i])}' "
                                         f"to {field.dtype.value}")
        columns.append(converted.alias(field.name))
    result = pl.DataFrame(columns) if columns else pl.DataFrame(height=frame.height)
    if not bad_reason:
        return Decoded(result)
    prefix = "" if locate is not None else f"{row_label} "
    locate = locate or _default_locate(frame)
    letters = []
    for i in sorted(bad_reason):
        line, raw_bytes = locate(i)
        letters.append(DeadLetter(source, f"{origin}:{prefix}{line}", _raw_text(raw_bytes), bad_reason[i]))
    keep = pl.Series([True] * frame.height)
    keep[sorted(bad_reason)] = False
    return Decoded(result.filter(keep), tuple(letters))


def _concat(schema: Schema, parts: Sequence[Decoded]) -> Decoded:
    frames = [p.frame for p in parts if p.frame.height]
    letters = tuple(letter for p in parts for letter in p.dead_letters)
    if not frames:
        frame = parts[0].frame.clear() if parts else empty_frame(schema)
    else:
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
    return Decoded(frame, letters)


# ---------------------------------------------------------------------- ndjson


def _json_lines(data: bytes) -> list[Record]:
    return [(n, line.rstrip(b"\r")) for n, line in enumerate(data.split(b"\n"), start=1) if line.strip()]


def _ndjson_read_schema(schema: Schema, full: Schema | None) -> dict[str, pl.DataType]:
    """What polars reads: timestamps as text (they may be epoch numbers or ISO strings)."""
    if not len(schema):
        # No column requested (COUNT(*)): still read one so rows are counted and lines validated.
        first = (full or schema).fields[:1]
        return {f.name: pl.String() for f in first} or {"__row": pl.String()}
    return {f.name: (pl.String() if f.dtype is DataType.TIMESTAMP else f.dtype.polars) for f in schema}


def _sniff_epoch_columns(data: bytes, schema: Schema, read_schema: dict[str, pl.DataType]
                         ) -> tuple[tuple[str, pl.DataType], ...]:
    """Read TIMESTAMP columns as integers when the first record holds epoch numbers: much faster than text."""
    result = dict(read_schema)
    head = data[:4096]
    start = len(head) - len(head.lstrip())
    end = data.find(b"\n", start)
    try:
        obj = json.loads(data[start:end if end >= 0 else len(data)])
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        for field in schema:
            value = obj.get(field.name)
            if field.dtype is DataType.TIMESTAMP and isinstance(value, int) and not isinstance(value, bool):
                result[field.name] = pl.Int64()
    return tuple(result.items())


def _read_ndjson(data: bytes, read_schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.read_ndjson(io.BytesIO(data), schema=read_schema)


def _json_value_error(value: object, dtype: DataType) -> str | None:
    """Why polars would refuse this JSON value for `dtype` (None if it accepts it)."""
    if value is None or dtype in (DataType.STRING, DataType.TIMESTAMP):
        return None
    kind = ("boolean" if isinstance(value, bool) else "number" if isinstance(value, (int, float))
            else "string" if isinstance(value, str) else "array" if isinstance(value, list) else "object")
    if dtype in _INT_RANGE:
        lo, hi = _INT_RANGE[dtype]
        if isinstance(value, int) and not isinstance(value, bool):
            return None if lo <= value <= hi else f"{value} is out of range for {dtype.value}"
    elif dtype is DataType.DOUBLE:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
    elif dtype is DataType.BOOLEAN and isinstance(value, bool):
        return None
    return f"expected {dtype.value}, got {kind} {_short(value, as_json=True)}"


def _ndjson_record_error(raw: bytes, schema: Schema) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid UTF-8 at byte {e.start}"
    try:
        obj = json.loads(text)
    except ValueError as e:
        msg = getattr(e, "msg", str(e))
        col = getattr(e, "colno", None)
        return f"invalid JSON: {msg}" + (f" at column {col}" if col else "")
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {_short(obj, as_json=True)}"
    for field in schema:
        problem = _json_value_error(obj.get(field.name), field.dtype)
        if problem is not None:
            return f"column '{field.name}': {problem}"
    return None


def _ndjson_records(records: list[Record], schema: Schema, read_schema: dict[str, pl.DataType], *,
                    source: str, origin: str) -> Decoded:
    """Decode records that polars refused as a whole: check each, read the good ones together."""
    letters: list[DeadLetter] = []
    good: list[Record] = []
    for line, raw in records:
        problem = _ndjson_record_error(raw, schema)
        if problem is None:
            good.append((line, raw))
        else:
            letters.append(DeadLetter(source, f"{origin}:{line}", _raw_text(raw), problem))
    try:
        frame = _read_ndjson(b"\n".join(raw for _, raw in good), read_schema) if good else None
    except Exception:  # our checks let through something polars refuses: ask polars line by line
        frames = []
        kept: list[Record] = []
        for line, raw in good:
            try:
                frames.append(_read_ndjson(raw, read_schema))
                kept.append((line, raw))
            except Exception as e:
                letters.append(DeadLetter(source, f"{origin}:{line}", _raw_text(raw), f"invalid record: {e}"))
        good = kept
        frame = pl.concat(frames, how="vertical") if frames else None
    if frame is None:
        frame = pl.DataFrame(schema=read_schema)
    decoded = _finish(frame, schema, source=source, origin=origin, records=good)
    letters.extend(decoded.dead_letters)
    letters.sort(key=lambda d: int(d.position.rsplit(":", 1)[1]))
    return Decoded(decoded.frame, tuple(letters))


def _finish(frame: pl.DataFrame, schema: Schema, *, source: str, origin: str,
            records: list[Record] | Callable[[], list[Record]]) -> Decoded:
    """Convert the text-read columns (timestamps) and keep only the requested ones."""
    cache: list[list[Record]] = []

    def locate(i: int) -> Record:
        if not cache:
            cache.append(records() if callable(records) else records)
        found = cache[0]
        return found[i] if i < len(found) else (i + 1, b"")

    return conform(frame, schema, source=source, origin=origin, locate=locate)


def decode_ndjson(data: bytes, schema: Schema, *, source: str, origin: str,
                  full_schema: Schema | None = None) -> Decoded:
    """Newline-delimited JSON objects → rows of `schema`; blank lines are skipped.

    `origin` names the input in dead-letter positions ('origin:line').
    `full_schema` is the declared schema when `schema` is a projection of it.
    """
    read_schema = _ndjson_read_schema(schema, full_schema)
    for candidate in dict.fromkeys([_sniff_epoch_columns(data, schema, read_schema), tuple(read_schema.items())]):
        try:
            frame = _read_ndjson(data, dict(candidate))
        except Exception:
            continue
        return _finish(frame, schema, source=source, origin=origin, records=lambda: _json_lines(data))
    records = _json_lines(data)
    parts = []
    for start in range(0, len(records), CHUNK_RECORDS):
        chunk = records[start:start + CHUNK_RECORDS]
        try:
            frame = _read_ndjson(b"\n".join(raw for _, raw in chunk), read_schema)
        except Exception:
            parts.append(_ndjson_records(chunk, schema, read_schema, source=source, origin=origin))
        else:
            parts.append(_finish(frame, schema, source=source, origin=origin, records=chunk))
    return _concat(schema, parts)


# ------------------------------------------------------------------------- csv


def _csv_records(data: bytes, quote: bytes = b'"') -> list[Record]:
    """Physical lines grouped into records (a quoted field may span lines); blank lines dropped."""
    records: list[Record] = []
    pending: list[bytes] = []
    start = 0
    for n, line in enumerate(data.split(b"\n"), start=1):
        if not pending:
            start = n
        pending.append(line)
        joined = b"\n".join(pending)
        if joined.count(quote) % 2 == 0:
            if joined.strip():
                records.append((start, joined.rstrip(b"\r")))
            pending = []
    if pending and b"\n".join(pending).strip():
        records.append((start, b"\n".join(pending)))
    return records


@dataclass(frozen=True, slots=True)
class CsvOptions:
    header: bool = True
    delimiter: str = ","


def _split_csv(text: str, delimiter: str) -> list[str]:
    return next(csv.reader([text], delimiter=delimiter), [])


def decode_csv(data: bytes, schema: Schema, *, source: str, origin: str,
               options: CsvOptions = CsvOptions(), full_schema: Schema | None = None) -> Decoded:
    """CSV text → rows of `schema`, matching columns by header name (or by declared order without a header).

    Only the requested columns are parsed; declared columns the file lacks are NULL.
    """
    full = full_schema or schema
    if not data.strip():
        return Decoded(empty_frame(schema))
    if options.header:
        first_end = data.find(b"\n")
        head_raw = data if first_end < 0 else data[:first_end]
        try:
            names = [n.strip() for n in _split_csv(head_raw.decode("utf-8-sig").rstrip("\r"), options.delimiter)]
        except UnicodeDecodeError:
            letter = DeadLetter(source, f"{origin}:1", _raw_text(head_raw), "invalid UTF-8 in the CSV header")
            return Decoded(empty_frame(schema), (letter,))
        body_offset = 1
    else:
        names = list(full.names)
        body_offset = 0
    wanted = [f.name for f in schema if f.name in names]
    if not wanted and names:
        wanted = names[:1]  # read one column so rows are counted
    typed = {f.name: (pl.String() if f.dtype is DataType.TIMESTAMP else f.dtype.polars)
             for f in schema if f.name in wanted}
    has_blank_lines = b"\n\n" in data or b"\n\r\n" in data

    def read(blob: bytes, dtypes: dict[str, pl.DataType] | None) -> pl.DataFrame:
        kwargs: dict[str, Any] = dict(separator=options.delimiter, columns=wanted, has_header=options.header,
                      schema_overrides=dtypes or {n: pl.String() for n in wanted})
        if not options.header:
            kwargs.update(new_columns=names, columns=[names.index(n) for n in wanted])
            kwargs["schema_overrides"] = {n: kwargs["schema_overrides"][n] for n in wanted}
        frame = pl.read_csv(io.BytesIO(blob), **kwargs)
        return frame.select(wanted)

    def records() -> list[Record]:
        return _csv_records(data)[body_offset:]

    if not has_blank_lines:
        try:
            frame = read(data, typed)
        except Exception:
            pass
        else:
            return _finish(frame, schema, source=source, origin=origin, records=records)
        try:
            frame = read(data, None)
        except Exception:
            pass
        else:
            return _finish(frame, schema, source=source, origin=origin, records=records)
    return _csv_by_record(records(), names, read, schema, source=source, origin=origin, options=options)


def _csv_by_record(records: list[Record], names: list[str], read: Callable[[bytes, dict | None], pl.DataFrame],
                   schema: Schema, *, source: str, origin: str, options: CsvOptions) -> Decoded:
    """Check records one at a time (UTF-8, field count), then read the good ones as text and convert."""
    letters: list[DeadLetter] = []
    good: list[Record] = []
    header = (options.delimiter.join(_quote_csv(n, options.delimiter) for n in names).encode()
              if options.header else b"")
    for line, raw in records:
        try:
            fields = _split_csv(raw.decode("utf-8").rstrip("\r"), options.delimiter)
        except UnicodeDecodeError as e:
            letters.append(DeadLetter(source, f"{origin}:{line}", _raw_text(raw), f"invalid UTF-8 at byte {e.start}"))
            continue
        except csv.Error as e:
            letters.append(DeadLetter(source, f"{origin}:{line}", _raw_text(raw), f"invalid CSV: {e}"))
            continue
        if len(fields) > len(names):
            letters.append(DeadLetter(source, f"{origin}:{line}", _raw_text(raw),
                                      f"expected {len(names)} fields, got {len(fields)}"))
            continue
        good.append((line, raw))

    def with_header(rows: list[Record]) -> bytes:
        body = b"\n".join(raw for _, raw in rows)
        return header + b"\n" + body if options.header else body

    frame: pl.DataFrame | None = None
    if good:
        try:
            frame = read(with_header(good), None)
        except Exception:
            frames, kept = [], []
            for line, raw in good:
                try:
                    frames.append(read(with_header([(line, raw)]), None))
                    kept.append((line, raw))
                except Exception as e:
                    letters.append(DeadLetter(source, f"{origin}:{line}", _raw_text(raw), f"invalid record: {e}"))
            good = kept
            frame = pl.concat(frames, how="vertical") if frames else None
    if frame is None:
        return Decoded(empty_frame(schema), tuple(letters))
    decoded = _finish(frame, schema, source=source, origin=origin, records=good)
    letters.extend(decoded.dead_letters)
    letters.sort(key=lambda d: int(d.position.rsplit(":", 1)[1]))
    return Decoded(decoded.frame, tuple(letters))


def _quote_csv(name: str, delimiter: str) -> str:
    if any(c in name for c in (delimiter, '"', "\n")):
        return '"' + name.replace('"', '""') + '"'
    return name
