"""What CREATE checks of a files source beyond its option types: the path, and that the format reads the first file.

A bounded source (no `watch`, or a TABLE) must name files that exist when it is created, as DuckDB's
`read_*` does; a watched path may not exist yet (the files arrive later), and is checked only if it does.
The first file (in name order) must be readable as the format: a parquet footer, a JSON object on the
first line of ndjson, and for csv a first line that is not a JSON object and, with a header, names at
least one declared column. Anything else would read as rows of NULLs.
"""

from __future__ import annotations

import gzip
import json
import os

import polars as pl

from stream_dsl.connectors.option_specs import OptionError
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef

SNIFF_BYTES = 1 << 20  # the most of the first file read to see its first line


def check_source_files(definition: SourceDef) -> None:
    """OptionError (at the path or the format) when the path names no file or the first file is not the format."""
    from stream_dsl.connectors.files import FileOptions, list_files
    from stream_dsl.connectors.file_formats import format_of

    options = FileOptions.parse(definition)
    what = f"{definition.kind} '{definition.name}'"
    bounded = definition.kind == "table" or not options.watch
    if not bounded and not (os.path.exists(options.path) or any(c in options.path for c in "*?[")):
        return  # a watched directory may be created later
    try:
        found = list_files(options, what, allow_missing=not bounded)
    except ConnectorError as e:
        hint = "; a stream with watch = 'true' may name a directory that does not exist yet"
        hint = hint if definition.kind == "stream" else ""
        raise OptionError(f"{e}{hint}", "path", at_value=True) from None
    if not found:
        return
    first = found[0]
    fmt = options.format or format_of(first)
    problem = _format_problem(first, fmt, options.csv.header, options.csv.delimiter, definition)
    if problem is not None:
        key = "format" if definition.option("format") is not None else "path"
        raise OptionError(f"{what}: the first file '{first}' cannot be read as {fmt}: {problem}", key, at_value=True)


def _format_problem(path: str, fmt: str | None, header: bool, delimiter: str, definition: SourceDef) -> str | None:
    if fmt is None:
        return "its extension names no format; set the option format (ndjson, csv or parquet)"
    if fmt == "parquet":
        try:
            pl.read_parquet_schema(path)
        except Exception as e:
            return f"{str(e).splitlines()[0]}"
        return None
    line = _first_line(path)
    if line is None:
        return None  # empty: nothing to misread
    as_json = _json_object(line)
    if fmt == "ndjson":
        if as_json is None:
            guess = "; it looks like csv: set format = 'csv'" if delimiter in line else ""
            return f"its first line is not a JSON object: {_short(line)}{guess}"
        return None
    if as_json is not None:
        return f"its first line is a JSON object ({_short(line)}): it looks like ndjson; set format = 'ndjson'"
    declared = [n for n in definition.schema.names if not n.startswith("_")]
    if header and declared:
        names = [n.strip().strip('"') for n in line.split(delimiter)]
        if not set(names) & set(declared):
            return (
                f"its header ({', '.join(names[:8])}) names none of the declared columns ({', '.join(declared[:8])}); "
                "set header = 'false' if the file has no header"
            )
    return None


def _first_line(path: str) -> str | None:
    """The first non-blank line of a (possibly gzip'ed) text file, or None if it has none."""
    try:
        opener = gzip.open if path.lower().endswith(".gz") else open
        with opener(path, "rb") as f:
            data = f.read(SNIFF_BYTES)
    except (OSError, EOFError) as e:
        raise OptionError(f"cannot read '{path}': {e}", "path", at_value=True) from None
    if len(data) == SNIFF_BYTES and b"\n" not in data:
        return None  # one enormous first line: too long to judge here (the reader's dead letters will)
    for raw in data.split(b"\n"):
        text = raw.decode("utf-8-sig", errors="replace").strip()
        if text:
            return text
    return None


def _json_object(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
