"""Deliberate differences from DuckDB (listed in the README): a difference of one of these kinds is not a bug.

`documented` names the kind, or None for a difference nobody decided on.
"""

from __future__ import annotations

from .oracle import Answer, Case


def documented(case: Case, difference: str, duck: Answer) -> str | None:
    return None
