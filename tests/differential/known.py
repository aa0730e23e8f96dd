"""Deliberate differences from DuckDB (listed in the README): a difference of one of these kinds is not a bug.

`documented` names the kind, or None for a difference nobody decided on.
Each kind is narrow: it matches one error of ours or DuckDB's, never rows
against other rows.
"""

from __future__ import annotations

from .oracle import Answer

KINDS = {
    "duckdb_raises_for_unused_values":
        "DuckDB raised a conversion or range error for a value that no output row needs (a constant it folds, "
        "or a filter it evaluates before a join); we raise only for values some row uses",
    "timestamp_range":
        "a TIMESTAMP outside years 1 to 9999 is an error here; DuckDB's TIMESTAMP reaches year 294246",
    "sum_does_not_widen":
        "SUM over BIGINT raises when the total leaves BIGINT; DuckDB widens to HUGEINT",
}


def documented(ours: Answer, theirs: Answer) -> str | None:
    if ours.foreign:
        return None
    if ours.rows is not None and theirs.error is not None and any(
            word in theirs.error for word in ("Conversion Error", "Out of Range Error", "Invalid Input Error")):
        return "duckdb_raises_for_unused_values"
    if ours.error is not None and theirs.rows is not None:
        if "to TIMESTAMP" in ours.error or "timestamp out of range" in ours.error:
            return "timestamp_range"
        if "integer overflow: SUM" in ours.error:
            return "sum_does_not_widen"
    return None
