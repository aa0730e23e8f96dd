"""Deliberate differences from DuckDB (listed in the README): a difference of one of these kinds is not a bug.

`documented` names the kind, or None for a difference nobody decided on.
Each kind is narrow: it matches one error of ours or DuckDB's, or (for
DOUBLE sums) rows that our own run over the same data in one batch makes
equal to DuckDB's; never rows against other rows alone.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from .oracle import Answer, Case, Setting, agree, our_answer, same_rows

KINDS = {
    "duckdb_raises_for_unused_values": (
        "DuckDB raised a conversion or range error for a value that no output row needs (a constant it folds, "
        "or a filter it evaluates before a join); we raise only for values some row uses"
    ),
    "timestamp_range": "a TIMESTAMP outside years 1 to 9999 is an error here; DuckDB's TIMESTAMP reaches year 294246",
    "negative_nan_text": (
        "a NaN is written 'nan'; DuckDB writes '-nan' for a NaN whose sign bit is set (power(-1, 0.5))"
    ),
    "unfolded_with_the_optimizer_off": (
        "with the optimizer off nothing is folded, so an operand whose result cannot matter (x + NULL, "
        "CASE WHEN FALSE ...) is still computed and may raise; with it on, as in DuckDB, it is not"
    ),
    "sum_does_not_widen": "SUM over BIGINT raises when the total leaves BIGINT; DuckDB widens to HUGEINT",
    "double_sum_by_batches": (
        "SUM and AVG of DOUBLE add each micro-batch's sum to the total, so values that cancel (1e308 and "
        "-1e308) round differently than in DuckDB's one pass; the same data in one batch gives DuckDB's answer"
    ),
    "checked_before_the_join": (
        "a WHERE condition on one side of a join is pushed below the join and may raise for a row the join "
        "then drops; DuckDB, whose join may drop the row first, does not"
    ),
}


def documented(ours: Answer, theirs: Answer, case: Case | None = None, setting: Setting | None = None) -> str | None:
    if ours.foreign:
        return None
    if (
        case is not None
        and setting is not None
        and not setting.optimize
        and ours.error is not None
        and theirs.rows is not None
    ):
        optimized = our_answer(case, replace(setting, optimize=True))
        if agree(optimized, theirs, case.ordered):
            return "unfolded_with_the_optimizer_off"
    if (
        case is not None
        and setting is not None
        and setting.optimize
        and " JOIN " in case.sql
        and ours.error is not None
        and theirs.rows is not None
    ):
        unpushed = our_answer(case, replace(setting, disabled_rules=("push_down_predicates",)))
        if agree(unpushed, theirs, case.ordered):
            return "checked_before_the_join"
    if (
        case is not None
        and setting is not None
        and case.cuts
        and ours.rows is not None
        and theirs.rows is not None
        and any(word in case.sql.upper() for word in ("SUM(", "AVG("))
        and _cancelling_doubles(case)
    ):
        whole = our_answer(replace(case, cuts=()), setting)
        if agree(whole, theirs, case.ordered):
            return "double_sum_by_batches"
    if (
        ours.rows is not None
        and theirs.error is not None
        and any(word in theirs.error for word in ("Conversion Error", "Out of Range Error", "Invalid Input Error"))
    ):
        return "duckdb_raises_for_unused_values"
    if ours.rows is not None and theirs.rows is not None and any("-nan" in repr(r) for r in theirs.rows):
        unsigned = tuple(tuple(v.replace("-nan", "nan") if isinstance(v, str) else v for v in r) for r in theirs.rows)
        if same_rows(ours.rows, unsigned, ordered=False):
            return "negative_nan_text"
    if ours.error is not None and theirs.rows is not None:
        if "to TIMESTAMP" in ours.error or "timestamp out of range" in ours.error:
            return "timestamp_range"
        if "integer overflow: SUM" in ours.error:
            return "sum_does_not_widen"
    return None


def _cancelling_doubles(case: Case) -> bool:
    """Whether the stream holds DOUBLEs so large that adding them in another order can change a sum's digits."""
    return any(
        case.s.schema[c] == pl.Float64
        and bool(case.s.select(pl.col(c).abs().is_between(1e300, 1e308)).to_series().any())
        for c in case.s.columns
    )
