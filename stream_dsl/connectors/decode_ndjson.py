"""Decode ndjson text into a declared schema: the fast path, and the sieve that sets bad records aside.

The fast path hands the whole input to polars in one call; only when that
raises do we look at records one by one, in chunks or by a few vectorized
passes (`_sift_ndjson`), so one bad line costs a chunk of per-line work,
not a file. Shared conversion (`conform`) lives in `decode.py`.
"""

from __future__ import annotations

import io
import json
from typing import Callable, Sequence

import polars as pl

from stream_dsl.connectors import decode_decimal
from stream_dsl.connectors.base import DeadLetter
from stream_dsl.connectors.conform_one_query import conform_clean, decode_clean
from stream_dsl.connectors.decode import (
    Decoded,
    Record,
    conform,
    conversion_problem,
    empty_frame,
    narrow,
    raw_text,
    short_text,
    with_checked,
)
from stream_dsl.ir.column_names import ROW_INDEX
from stream_dsl.ir.types import INTEGER_BOUNDS, DataType, Field, Schema

CHUNK_RECORDS = 4096


def _json_text_problem(text: object, field: Field) -> str:
    """Why a JSON value read as text is not of the field's type, worded as `_json_value_error` words it."""
    if field.dtype in (DataType.STRING, DataType.TIMESTAMP) or not isinstance(text, str):
        return conversion_problem(text, field)
    try:
        number = json.loads(text)
    except ValueError:
        number = text
    if isinstance(number, (int, float, bool)) or number is None:
        return _json_value_error(number, field.dtype) or conversion_problem(text, field)
    kind = "object" if text.startswith("{") else "array" if text.startswith("[") else "string"
    return f"expected {field.dtype.value}, got {kind} {short_text(text, as_json=kind == 'string')}"


def _concat(schema: Schema, parts: Sequence[Decoded]) -> Decoded:
    frames = [p.frame for p in parts if p.frame.height]
    letters = tuple(letter for p in parts for letter in p.dead_letters)
    if not frames:
        frame = parts[0].frame.clear() if parts else empty_frame(schema)
    else:
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
    return Decoded(frame, letters)


def _json_lines(data: bytes) -> list[Record]:
    return [(n, line.rstrip(b"\r")) for n, line in enumerate(data.split(b"\n"), start=1) if line.strip()]


def _ndjson_read_schema(schema: Schema, full: Schema | None) -> dict[str, pl.DataType]:
    """What polars reads: timestamps as text (they may be epoch numbers or ISO strings)."""
    if not len(schema):
        # No column requested (COUNT(*)): still read one so rows are counted and lines validated.
        first = (full or schema).fields[:1]
        return {f.name: pl.String() for f in first} or {"__row": pl.String()}
    return {f.name: (pl.String() if f.dtype in (DataType.TIMESTAMP, DataType.DATE) else f.dtype.polars) for f in schema}


def _sniff_epoch_columns(
    data: bytes, schema: Schema, read_schema: dict[str, pl.DataType]
) -> tuple[tuple[str, pl.DataType], ...]:
    """Read TIMESTAMP columns as integers when the first record holds epoch numbers: much faster than text."""
    result = dict(read_schema)
    obj = first_record(data)
    if obj is not None:
        for field in schema:
            if field.dtype is DataType.TIMESTAMP and is_integer(obj.get(field.name)):
                result[field.name] = pl.Int64()
    return tuple(result.items())


def first_record(data: bytes) -> dict | None:
    """The first record of ndjson text, parsed (None: the first line is not a JSON object): what the read types
    are sniffed from, here and in `ndjson_small`'s cache key."""
    start, end = _first_record(data)
    try:
        obj = json.loads(data[start : end if end >= 0 else len(data)])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def is_integer(value: object) -> bool:
    """A JSON integer (not a boolean): a TIMESTAMP column whose first value is one is read as Int64 (epoch)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _first_record(data: bytes) -> tuple[int, int]:
    """Where the first record `_sniff_epoch_columns` reads starts, and its line's end (-1: the end of `data`)."""
    head = data[:4096]
    start = len(head) - len(head.lstrip())
    return start, data.find(b"\n", start)


def sniffs_like_whole(prefix: bytes) -> bool:
    """Whether `read_types` of this prefix of a text gives what it gives for the whole text: the prefix holds
    the first record's line end (`ndjson_deferred.py` reads only a file's start to sniff its types)."""
    return _first_record(prefix)[1] >= 0


def read_types(data: bytes, schema: Schema) -> dict[str, pl.DataType]:
    """The polars types the fast path reads `schema`'s columns of `data` as (`ndjson_deferred.py` reads so too)."""
    return dict(_sniff_epoch_columns(data, schema, _ndjson_read_schema(schema, schema)))


def _read_ndjson(data: bytes, read_schema: dict[str, pl.DataType]) -> pl.DataFrame:
    exact = decode_decimal.decimal_columns(read_schema)  # DECIMAL columns: read as text, converted in `conform`
    if exact:
        data, read_schema = decode_decimal.quote_numbers(data, exact), decode_decimal.as_text_schema(read_schema)
    return pl.read_ndjson(io.BytesIO(data), schema=read_schema)


def _json_value_error(value: object, dtype: DataType) -> str | None:
    """Why polars would refuse this JSON value for `dtype` (None if it accepts it)."""
    if value is None or dtype in (DataType.STRING, DataType.TIMESTAMP):
        return None
    if dtype.is_list and isinstance(value, list):  # a list column: each element as the element type
        for position, element in enumerate(value, start=1):
            problem = _json_value_error(element, dtype.element)
            if problem is not None:
                return f"element {position}: {problem}"
        return None
    if dtype.is_struct and isinstance(value, dict):  # each field as its type; a missing one is NULL, extras ignored
        for name, field_type in dtype.fields:
            problem = _json_value_error(value.get(name), field_type)
            if problem is not None:
                return f"field '{name}': {problem}"
        return None
    kind = (
        "boolean"
        if isinstance(value, bool)
        else "number"
        if isinstance(value, (int, float))
        else "string"
        if isinstance(value, str)
        else "array"
        if isinstance(value, list)
        else "object"
    )
    if dtype in INTEGER_BOUNDS:
        lo, hi = INTEGER_BOUNDS[dtype]
        if isinstance(value, int) and not isinstance(value, bool):
            return None if lo <= value <= hi else f"{value} is out of range for {dtype.value}"
    elif dtype is DataType.DOUBLE:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
    elif dtype is DataType.BOOLEAN and isinstance(value, bool):
        return None
    return f"expected {dtype.value}, got {kind} {short_text(value, as_json=True)}"


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
        return f"expected a JSON object, got {short_text(obj, as_json=True)}"
    for field in schema:
        problem = _json_value_error(obj.get(field.name), field.dtype)
        if problem is not None:
            return f"column '{field.name}': {problem}"
    return None


def _ndjson_records(
    records: list[Record], schema: Schema, read_schema: dict[str, pl.DataType], *, source: str, origin: str
) -> Decoded:
    """Decode records that polars refused as a whole: check each, read the good ones together."""
    letters: list[DeadLetter] = []
    good: list[Record] = []
    for line, raw in records:
        problem = _ndjson_record_error(raw, schema)
        if problem is None:
            good.append((line, raw))
        else:
            letters.append(DeadLetter(source, f"{origin}:{line}", raw_text(raw), problem))
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
                letters.append(DeadLetter(source, f"{origin}:{line}", raw_text(raw), f"invalid record: {e}"))
        good = kept
        frame = pl.concat(frames, how="vertical") if frames else None
    if frame is None:
        frame = pl.DataFrame(schema=read_schema)
    decoded = finish_decoded(frame, schema, source=source, origin=origin, records=good)
    letters.extend(decoded.dead_letters)
    letters.sort(key=lambda d: int(d.position.rsplit(":", 1)[1]))
    return Decoded(decoded.frame, tuple(letters))


def finish_decoded(
    frame: pl.DataFrame,
    schema: Schema,
    *,
    source: str,
    origin: str,
    records: Sequence[Record] | Callable[[], Sequence[Record]] | _Located,
) -> Decoded:
    """Convert the text-read columns (timestamps) and keep only the requested ones."""
    clean = conform_clean(frame, schema)  # one query when no row is a dead letter (conform_one_query.py)
    if clean is not None:
        return Decoded(clean)
    if isinstance(records, _Located):
        return conform(
            frame, schema, source=source, origin=origin, locate_many=records.many, problem=_json_text_problem
        )
    cache: list[Sequence[Record]] = []

    def locate(i: int) -> Record:
        if not cache:
            cache.append(records() if callable(records) else records)
        found = cache[0]
        return found[i] if i < len(found) else (i + 1, b"")

    return conform(frame, schema, source=source, origin=origin, locate=locate)


def decode_ndjson(
    data: bytes, schema: Schema, *, source: str, origin: str, full_schema: Schema | None = None
) -> Decoded:
    """Newline-delimited JSON objects → rows of `schema`; blank lines are skipped.

    `origin` names the input in dead-letter positions ('origin:line').
    `full_schema` is the declared schema when `schema` is a projection of it.
    """
    wide = with_checked(schema, full_schema)
    return narrow(_decode_ndjson(data, wide, source=source, origin=origin, full_schema=full_schema), schema)


def _decode_ndjson(data: bytes, schema: Schema, *, source: str, origin: str, full_schema: Schema | None) -> Decoded:
    read_schema = _ndjson_read_schema(schema, full_schema)
    sniffed = _sniff_epoch_columns(data, schema, read_schema)
    clean = decode_clean(data, dict(sniffed), schema)  # read and conform in one query (conform_one_query.py)
    if clean is not None:
        return Decoded(clean)
    for candidate in dict.fromkeys([sniffed, tuple(read_schema.items())]):
        try:
            frame = _read_ndjson(data, dict(candidate))
        except Exception:
            continue
        return finish_decoded(frame, schema, source=source, origin=origin, records=lambda: _json_lines(data))
    try:
        if any(f.dtype.is_nested for f in schema):  # the sieve reads NULL for a bad element: check by chunk
            raise ValueError("nested columns")
        typed = dict(_sniff_epoch_columns(data, schema, read_schema))
        return _sift_ndjson(data, schema, read_schema, source=source, origin=origin, typed_schema=typed)
    except Exception:  # polars did something the sieve does not expect: check chunk by chunk
        pass
    records = _json_lines(data)
    parts = []
    for start in range(0, len(records), CHUNK_RECORDS):
        chunk = records[start : start + CHUNK_RECORDS]
        try:
            frame = _read_ndjson(b"\n".join(raw for _, raw in chunk), read_schema)
        except Exception:
            parts.append(_ndjson_records(chunk, schema, read_schema, source=source, origin=origin))
        else:
            parts.append(finish_decoded(frame, schema, source=source, origin=origin, records=chunk))
    return _concat(schema, parts)


def _sift_ndjson(
    data: bytes,
    schema: Schema,
    read_schema: dict[str, pl.DataType],
    *,
    source: str,
    origin: str,
    typed_schema: dict[str, pl.DataType] | None = None,
) -> Decoded:
    """Set the bad records aside in a few vectorized passes, so a bad record costs about what a good one does.

    1. polars splits the input into lines; lines that are not one JSON object (`{...}`) or not UTF-8
       are set aside.
    2. The rest is read with every column as text, which never fails on a value's type; a group polars
       refuses (JSON broken inside the braces) is halved until the culprits are alone.
    3. `conform` converts the text to the declared types; a value that does not convert (a string
       where BIGINT is declared) makes its row a dead letter.
    Only the bad records are looked at one by one, for their reason.
    """
    if any(f.dtype.is_struct for f in schema):  # a lenient read hides a bad field inside a struct: check by chunk
        raise ValueError("STRUCT columns are sifted chunk by chunk")
    lines = _lines(data)
    pieces: list[bytes] = []

    def raw(i: int) -> bytes:  # only for lines that may not be UTF-8
        if not pieces:
            pieces.extend(data.split(b"\n"))
        return pieces[i].rstrip(b"\r")

    letters: list[DeadLetter] = []
    not_utf8: set[int] = set()

    def bad_lines(rows: list[int], fallback: str) -> None:
        for i, text in zip(rows, lines.gather(rows).to_list()):
            line = raw(i) if i in not_utf8 else text.rstrip("\r").encode()
            letters.append(
                DeadLetter(source, f"{origin}:{i + 1}", raw_text(line), _ndjson_record_error(line, schema) or fallback)
            )

    def bad(i: int, fallback: str) -> None:
        bad_lines([i], fallback)

    stripped = lines.str.strip_chars()
    keep = stripped.str.starts_with("{") & stripped.str.ends_with("}")
    set_aside = ~keep & stripped.is_not_null() & (stripped.str.len_bytes() > 0)  # blank lines are skipped
    if not _is_utf8(data):  # a line with U+FFFD may be invalid UTF-8: its raw bytes decide
        lossy = keep & lines.str.contains("\ufffd", literal=True)
        for i in lossy.arg_true().to_list():
            if not _is_utf8(raw(i)):
                keep[i], set_aside[i] = False, True
                not_utf8.add(i)
    bad_lines(set_aside.arg_true().to_list(), "not a JSON object")
    rows = keep.arg_true()
    good = lines.filter(keep)
    text_schema: dict[str, pl.DataType] = {c: pl.String() for c in read_schema}
    if typed_schema and len(rows):
        split = _typed_then_suspects(good, rows, lines, schema, typed_schema, text_schema, source=source, origin=origin)
        if split is not None:
            return Decoded(split.frame, _by_line(letters + list(split.dead_letters)))
    # typed first (cheap when it fails: polars stops at the first error); text when a value has the wrong type
    whole = (_read_lines(good, typed_schema) if typed_schema else None) if len(rows) else None
    if whole is None and len(rows):
        whole = _read_lines(good, text_schema)
    frames: list[pl.DataFrame] = [whole] if whole is not None else []
    kept: list[pl.Series] = [rows] if whole is not None else []
    groups = (
        []
        if whole is not None or not len(rows)
        else [
            (good.slice(start, CHUNK_RECORDS), rows.slice(start, CHUNK_RECORDS), False)
            for start in range(0, len(rows), CHUNK_RECORDS)
        ][::-1]
    )
    while groups:  # JSON broken inside the braces: a chunk polars refuses is sifted by json_path_match, then halved
        chunk, chunk_rows, sifted = groups.pop()
        if not len(chunk):
            continue
        frame = _read_lines(chunk, text_schema)
        if frame is None and len(chunk) == 1:
            bad(chunk_rows[0], "invalid JSON (polars cannot read it)")
            continue
        if frame is None and not sifted:
            valid = chunk.str.json_path_match("$").is_not_null()
            bad_lines(chunk_rows.filter(~valid).to_list(), "invalid JSON")
            groups.append((chunk.filter(valid), chunk_rows.filter(valid), True))
            continue
        if frame is None:  # polars refuses a line json_path_match accepts: halve until it is alone
            half = len(chunk) // 2
            groups += [
                (chunk.slice(half), chunk_rows.slice(half), True),
                (chunk.slice(0, half), chunk_rows.slice(0, half), True),
            ]  # the first half next: in order
            continue
        frames.append(frame)
        kept.append(chunk_rows)
    if not frames:
        return Decoded(empty_frame(schema), _by_line(letters))
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
    kept_rows = kept[0] if len(kept) == 1 else pl.concat(kept)
    decoded = finish_decoded(frame, schema, source=source, origin=origin, records=_Located(kept_rows, lines))
    return Decoded(decoded.frame, _by_line(letters + list(decoded.dead_letters)))


def _typed_then_suspects(
    good: pl.Series,
    rows: pl.Series,
    lines: pl.Series,
    schema: Schema,
    typed_schema: dict[str, pl.DataType],
    text_schema: dict[str, pl.DataType],
    *,
    source: str,
    origin: str,
) -> Decoded | None:
    """Every line read with the declared types, leniently (a value of the wrong type becomes NULL); only the
    rows with a NULL (a bad value, or a real NULL) are read again as text and checked value by value.

    Reading everything as text costs about twice the typed read, so this keeps a batch with a few bad
    records close to a clean one. None when polars refuses the lines even leniently (JSON broken inside
    the braces): the caller sifts them.
    """
    typed = _read_lines(good, typed_schema, lenient=True)
    if typed is None:
        return None
    suspect = typed.select(pl.any_horizontal(pl.all().is_null())).to_series() if typed.width else None
    if suspect is None or not suspect.any():
        return finish_decoded(typed, schema, source=source, origin=origin, records=_Located(rows, lines))
    text = _read_lines(good.filter(suspect), text_schema)
    if text is None:
        return None
    ordered = Schema(tuple(schema) + (Field(ROW_INDEX, DataType.BIGINT),))  # to put the rows back in order
    parts = []
    for frame, mask in ((typed, ~suspect), (text, suspect)):
        part_rows = rows.filter(mask)
        part = frame.filter(mask) if frame is typed else frame
        part = part.with_columns(pl.Series(ROW_INDEX, part_rows, dtype=pl.Int64))
        parts.append(finish_decoded(part, ordered, source=source, origin=origin, records=_Located(part_rows, lines)))
    merged = pl.concat([p.frame for p in parts], how="vertical").sort(ROW_INDEX).drop(ROW_INDEX)
    return Decoded(merged, tuple(letter for p in parts for letter in p.dead_letters))


def _read_lines(lines: pl.Series, schema: dict[str, pl.DataType], *, lenient: bool = False) -> pl.DataFrame | None:
    """These JSON lines read by polars, one row each; None if it refuses them (it stops at the first error).

    `lenient`: a value that is not of its column's type is read as NULL instead of refusing the lines.
    """
    try:
        frame = pl.read_ndjson(io.BytesIO(lines.str.join("\n").item().encode()), schema=schema, ignore_errors=lenient)
    except Exception:
        return None
    if frame.height != len(lines):
        raise ValueError("the text read is not one row per record")
    return frame


class _Located:
    """Where row i of the frame read came from, found in bulk for the rows that turn out bad."""

    def __init__(self, rows: pl.Series, lines: pl.Series) -> None:
        self._rows, self._lines = rows, lines

    def many(self, indexes: list[int]) -> list[Record]:
        rows = self._rows.gather(indexes)
        texts = self._lines.gather(rows).to_list()
        return [(row + 1, text.rstrip("\r").encode()) for row, text in zip(rows.to_list(), texts)]


def _lines(data: bytes) -> pl.Series:
    """The input's physical lines as text, index i for line i + 1 (invalid UTF-8 replaced by U+FFFD)."""
    if b"\x00" not in data:
        return pl.read_csv(
            io.BytesIO(data),
            has_header=False,
            separator="\x00",
            quote_char=None,
            new_columns=["line"],
            schema_overrides={"line": pl.String()},
            encoding="utf8-lossy",
        ).to_series()
    pieces = data.split(b"\n")
    if pieces and not pieces[-1]:
        pieces.pop()
    return pl.Series("line", [p.decode("utf-8", errors="replace") for p in pieces], dtype=pl.String)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _by_line(letters: list[DeadLetter]) -> tuple[DeadLetter, ...]:
    return tuple(sorted(letters, key=lambda d: int(d.position.rsplit(":", 1)[1])))
