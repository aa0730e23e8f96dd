"""Decode CSV text into a declared schema, so that one bad record never hides the rows around it.

The fast path hands the whole input to polars in one call, then checks two
ways polars can misread without raising:

- a row with too few fields comes back padded with NULLs: a NULL in the
  file's last column (always read for this check) sends us to that raw
  line, and a short row is a dead letter ("expected 3 fields, got 2");
- a stray quote opens a quoted field that runs to the next quote, however
  many lines later, and swallows the rows between. When the input holds a
  quote character every column is read as text; a value with a line break
  in it means a record spanned lines, and the careful path decides.

The careful path splits records with Python's csv module in strict mode. A
record spanning lines is kept only when it is well formed with the right
number of fields; otherwise its first line alone is a dead letter and
splitting starts again on the next line. The good records are then read by
polars together (halving a group polars refuses, so a bad record costs a
few reads, not one per line).
"""

from __future__ import annotations

import bisect
import csv
import io
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import polars as pl

from stream_dsl.connectors.base import DeadLetter
from stream_dsl.connectors.decode import Decoded, Record, raw_text, empty_frame, narrow, with_checked
from stream_dsl.connectors.decode_ndjson import finish_decoded
from stream_dsl.ir.types import DataType, Schema

QUOTE = '"'


@dataclass(frozen=True, slots=True)
class CsvOptions:
    header: bool = True
    delimiter: str = ","


Reader = Callable[[bytes, "dict[str, pl.DataType] | None", "list[str] | None"], pl.DataFrame]


def decode_csv(
    data: bytes,
    schema: Schema,
    *,
    source: str,
    origin: str,
    options: CsvOptions = CsvOptions(),
    full_schema: Schema | None = None,
) -> Decoded:
    """CSV text → rows of `schema`, matching columns by header name (or by declared order without a header).

    Only the requested columns are converted; declared columns the file lacks are NULL.
    """
    wide = with_checked(schema, full_schema)
    decoded = _decode(data, wide, source=source, origin=origin, options=options, full=full_schema or schema)
    return narrow(decoded, schema)


def _header(data: bytes, options: CsvOptions, full: Schema) -> tuple[list[str] | None, str | None]:
    """The column names (from the first line, or the declared order); or why the header is unreadable."""
    if not options.header:
        return list(full.names), None
    first_end = data.find(b"\n")
    head_raw = data if first_end < 0 else data[:first_end]
    try:
        return [n.strip() for n in _split(head_raw.decode("utf-8-sig").rstrip("\r"), options.delimiter)], None
    except UnicodeDecodeError:
        return None, "invalid UTF-8 in the CSV header"


def _decode(data: bytes, schema: Schema, *, source: str, origin: str, options: CsvOptions, full: Schema) -> Decoded:
    if not data.strip():
        return Decoded(empty_frame(schema))
    names, problem = _header(data, options, full)
    if names is None:
        first_end = data.find(b"\n")
        raw = data if first_end < 0 else data[:first_end]
        return Decoded(empty_frame(schema), (DeadLetter(source, f"{origin}:1", raw_text(raw), problem or ""),))
    if options.header and full.names and not set(names) & set(full.names):
        return _no_declared_columns(data, names, full, schema, source=source, origin=origin)
    wanted = [f.name for f in schema if f.name in names] or names[:1]  # one column at least, so rows are counted
    typed = {
        f.name: (
            pl.String() if f.dtype in (DataType.TIMESTAMP, DataType.DATE) or f.dtype.is_decimal else f.dtype.polars
        )
        for f in schema
        if f.name in wanted
    }
    read = _reader(names, options)
    body_start = 2 if options.header else 1

    cache: list[_Lines] = []

    def lines() -> _Lines:
        if not cache:
            cache.append(_Lines(data, options.header, body_start))
        return cache[0]

    has_blank_lines = b"\n\n" in data or b"\n\r\n" in data
    if not has_blank_lines:
        frame = _fast_read(data, read, names, wanted, typed, quoted=QUOTE.encode() in data)
        if frame is not None:
            short = _short_rows(frame, names, lines, options.delimiter, source, origin)
            if not short:
                return finish_decoded(frame.select(wanted), schema, source=source, origin=origin, records=lines)
            return _drop_rows(frame.select(wanted), short, schema, source=source, origin=origin, records=lines)
    may_break = {j for j, n in enumerate(names) if n not in full or full.dtype(n) is DataType.STRING}
    records, letters = split_records(
        data, options, len(names), body_start, source=source, origin=origin, may_break=may_break
    )
    return _read_records(records, letters, read, wanted, schema, options, names, source=source, origin=origin)


def _no_declared_columns(
    data: bytes, names: list[str], full: Schema, schema: Schema, *, source: str, origin: str
) -> Decoded:
    """A header naming none of the declared columns (ndjson read as csv, say): every line is a dead letter.

    Read as rows they would be rows of NULLs only; as dead letters they say what the file holds and why.
    """
    looks = " (the file looks like ndjson: set format = 'ndjson')" if data.lstrip()[:1] in (b"{", b"[") else ""
    reason = (
        f"not a record of the declared columns: the header ({', '.join(names[:8])}) names none of "
        f"{', '.join(full.names[:8])}{looks}"
    )
    letters = [
        DeadLetter(source, f"{origin}:{i}", raw_text(raw.rstrip(b"\r")), reason)
        for i, raw in enumerate(data.split(b"\n"), start=1)
        if raw.strip()
    ]
    return Decoded(empty_frame(schema), tuple(letters))


def _reader(names: list[str], options: CsvOptions) -> Reader:
    def read(blob: bytes, dtypes: dict[str, pl.DataType] | None, columns: list[str] | None) -> pl.DataFrame:
        columns = columns or names
        overrides = {n: (dtypes or {}).get(n, pl.String()) for n in columns}
        kwargs: dict = dict(separator=options.delimiter, has_header=options.header, schema_overrides=overrides)
        if options.header:
            kwargs["columns"] = columns
        else:
            kwargs.update(new_columns=names, columns=[names.index(n) for n in columns])
        return pl.read_csv(io.BytesIO(blob), **kwargs).select(columns)

    return read


def _fast_read(
    data: bytes, read: Reader, names: list[str], wanted: list[str], typed: dict[str, pl.DataType], *, quoted: bool
) -> pl.DataFrame | None:
    """The whole input read by polars, with the last column for the short-row check; None: look closer."""
    columns = list(dict.fromkeys(wanted + [names[-1]]))
    if quoted:  # every column as text, to see a record that spanned lines
        try:
            frame = read(data, None, names)
        except Exception:
            return None
        text = [c for c, t in frame.schema.items() if t == pl.String]
        if text and frame.select(pl.any_horizontal(pl.col(text).str.contains("\n", literal=True)).any()).item():
            return None
        return frame.select(columns)
    for dtypes in (typed, None):
        try:
            return read(data, dtypes, columns)
        except Exception:
            continue
    return None


def _short_rows(
    frame: pl.DataFrame, names: list[str], lines: Callable[[], _Lines], delimiter: str, source: str, origin: str
) -> dict[int, DeadLetter | None]:
    """Row index → dead letter for rows polars padded with NULLs because their line has too few fields.

    A line of only spaces is dropped without a dead letter (None), as blank lines are.
    """
    last = frame.get_column(names[-1])
    if not last.null_count():
        return {}
    found = lines()
    short: dict[int, DeadLetter | None] = {}
    for i in last.is_null().arg_true().to_list():
        line, raw = found[i]
        if not raw.strip():
            short[i] = None
            continue
        try:
            text = raw.decode("utf-8")
            count = text.count(delimiter) + 1 if QUOTE not in text else len(_split(text, delimiter))
        except (UnicodeDecodeError, csv.Error):
            continue  # conversion finds these
        if count < len(names):
            short[i] = DeadLetter(
                source, f"{origin}:{line}", raw_text(raw), f"expected {len(names)} fields, got {count}"
            )
    return short


def _drop_rows(
    frame: pl.DataFrame,
    bad: dict[int, DeadLetter | None],
    schema: Schema,
    *,
    source: str,
    origin: str,
    records: Callable[[], _Lines],
) -> Decoded:
    keep = pl.Series([True] * frame.height)
    keep[sorted(bad)] = False
    decoded = finish_decoded(
        frame.filter(keep), schema, source=source, origin=origin, records=lambda: records().without(bad)
    )
    letters = [d for d in bad.values() if d is not None]
    return Decoded(decoded.frame, _sorted(letters + list(decoded.dead_letters)))


class _Lines(Sequence[Record]):
    """The physical lines after the header as records, built on demand (the fast path: one record each).

    `skip` leaves out the rows at those indexes (rows already dead), so index i is the i-th row kept.
    """

    def __init__(self, data: bytes, header: bool, first_line: int, skip: Sequence[int] = ()) -> None:
        lines = data.split(b"\n")[1 if header else 0 :]
        if lines and not lines[-1].strip():
            lines.pop()
        self._lines, self._first, self._skip = lines, first_line, sorted(skip)

    def without(self, skip: Iterable[int]) -> "_Lines":
        other = _Lines(b"", False, self._first, sorted(skip))
        other._lines = self._lines
        return other

    def __len__(self) -> int:
        return len(self._lines) - len(self._skip)

    def __getitem__(self, i: int) -> Record:  # type: ignore[override]  # indexes only, no slices
        j = i
        while True:  # the j with j - (skipped rows up to j) == i
            nxt = i + bisect.bisect_right(self._skip, j)
            if nxt == j:
                break
            j = nxt
        return j + self._first, self._lines[j].rstrip(b"\r")


def _split(text: str, delimiter: str) -> list[str]:
    return next(csv.reader([text], delimiter=delimiter), [])


def _sorted(letters: list[DeadLetter]) -> tuple[DeadLetter, ...]:
    return tuple(sorted(letters, key=lambda d: int(d.position.rsplit(":", 1)[1])))


# ---------------------------------------------------------------- the careful path


def split_records(
    data: bytes,
    options: CsvOptions,
    fields: int,
    first_line: int,
    *,
    source: str,
    origin: str,
    may_break: set[int] | None = None,
) -> tuple[list[Record], list[DeadLetter]]:
    """Records of the body (after the header) with `fields` fields each, and dead letters for the rest.

    A record that spans lines but is not well formed, has the wrong number
    of fields, or has a line break in a field that cannot hold one (only
    the field numbers in `may_break` can: text columns; None: any) costs
    its first line only: splitting starts again on the next line, so a
    stray quote never swallows the rows after it.
    """
    lines = data.split(b"\n")[1 if options.header else 0 :]
    records: list[Record] = []
    letters: list[DeadLetter] = []

    def bad(index: int, reason: str) -> None:
        letters.append(
            DeadLetter(source, f"{origin}:{index + first_line}", raw_text(lines[index].rstrip(b"\r")), reason)
        )

    i = 0
    while i < len(lines):
        position = [i]
        reader = csv.reader(_texts(lines, i, position), delimiter=options.delimiter, strict=True)
        base = i
        while i < len(lines):
            start = i
            try:
                row = next(reader)
            except StopIteration:
                i = len(lines)
                break
            except UnicodeDecodeError as e:
                bad(
                    start,
                    f"invalid UTF-8 at byte {e.start}"
                    if position[0] == start
                    else "a quoted field runs into a line that is not UTF-8",
                )
                i = start + 1
                break
            except csv.Error as e:
                spans = position[0] > start
                bad(start, f"unterminated quoted field ({e})" if spans else f"invalid CSV: {e}")
                i = start + 1
                break
            end = base + reader.line_num
            if not any(field.strip() for field in row) and end - start == 1:
                i = end  # a blank line
                continue
            if end - start > 1 and (len(row) != fields or not _breaks_allowed(row, may_break)):
                bad(start, "unterminated quoted field: a quote opens a field that does not close on this line")
                i = start + 1
                break
            if len(row) != fields:
                bad(start, f"expected {fields} fields, got {len(row)}")
                i = end
                continue
            records.append((start + first_line, b"\n".join(lines[start:end]).rstrip(b"\r")))
            i = end
    return records, letters


def _breaks_allowed(row: list[str], may_break: set[int] | None) -> bool:
    return may_break is None or all(j in may_break for j, value in enumerate(row) if "\n" in value)


def _texts(lines: list[bytes], start: int, position: list[int]) -> Iterator[str]:
    """Lines from `start` as text with their newline (csv needs it inside quoted fields); `position[0]`: the
    last one."""
    for k in range(start, len(lines)):
        position[0] = k
        yield lines[k].decode("utf-8") + ("\n" if k + 1 < len(lines) else "")


def _read_records(
    records: list[Record],
    letters: list[DeadLetter],
    read: Reader,
    wanted: list[str],
    schema: Schema,
    options: CsvOptions,
    names: list[str],
    *,
    source: str,
    origin: str,
) -> Decoded:
    """Read the good records with polars as text (halving groups it refuses), then convert."""
    header = options.delimiter.join(_quote(n, options.delimiter) for n in names).encode() if options.header else b""

    def blob(rows: list[Record]) -> bytes:
        body = b"\n".join(raw for _, raw in rows) + b"\n"
        return header + b"\n" + body if options.header else body

    frames: list[pl.DataFrame] = []
    kept: list[Record] = []
    pending = [records] if records else []
    while pending:
        group = pending.pop()
        try:
            frame = read(blob(group), None, wanted)
            if frame.height != len(group):
                raise ValueError(f"read {frame.height} rows from {len(group)} records")
        except Exception as e:
            if len(group) == 1:
                line, raw = group[0]
                hint = " (a quote inside an unquoted field?)" if QUOTE.encode() in raw else ""
                letters.append(
                    DeadLetter(
                        source, f"{origin}:{line}", raw_text(raw), f"invalid record{hint}: {str(e).splitlines()[0]}"
                    )
                )
            else:
                half = len(group) // 2
                pending += [group[half:], group[:half]]  # the first half is read first
            continue
        frames.append(frame)
        kept += group
    if not frames:
        return Decoded(empty_frame(schema), _sorted(letters))
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
    decoded = finish_decoded(frame, schema, source=source, origin=origin, records=kept)
    return Decoded(decoded.frame, _sorted(letters + list(decoded.dead_letters)))


def _quote(name: str, delimiter: str) -> str:
    if any(c in name for c in (delimiter, QUOTE, "\n")):
        return QUOTE + name.replace(QUOTE, QUOTE * 2) + QUOTE
    return name
