"""File format names and extensions, shared by the files source and the files sink."""

from __future__ import annotations

from stream_dsl.errors import ConnectorError

EXTENSIONS = {"ndjson": (".ndjson", ".json", ".jsonl"), "csv": (".csv",), "parquet": (".parquet", ".pq")}
_FORMAT_NAMES = {"ndjson": "ndjson", "json": "ndjson", "jsonl": "ndjson", "csv": "csv", "parquet": "parquet"}
FORMAT_CHOICES = tuple(_FORMAT_NAMES)  # what the format option accepts
SINK_EXTENSION = {"ndjson": "ndjson", "csv": "csv", "parquet": "parquet"}


def format_name(value: str | None, what: str) -> str | None:
    """The canonical format `value` names (json and jsonl are ndjson), or None when no format is given."""
    if value is None:
        return None
    found = _FORMAT_NAMES.get(value.strip().lower())
    if found is None:
        raise ConnectorError(f"{what}: unknown format '{value}'; choose one of ndjson, json, csv, parquet")
    return found


def format_of(path: str) -> str | None:
    """The format a file's extension names (through a '.gz' of a text format), or None."""
    lowered = path.lower()
    if lowered.endswith(".gz"):
        lowered = lowered[:-3]
        return next((f for f in ("ndjson", "csv") if lowered.endswith(EXTENSIONS[f])), None)
    for fmt, extensions in EXTENSIONS.items():
        if lowered.endswith(extensions):
            return fmt
    return None
