"""Column names across joined relations: the output name of a repeated column, and the ambiguity error.

DuckDB's `SELECT *` over `a JOIN b` may repeat a name (`k`, ..., `k`); a polars frame cannot hold two
columns of one name, and polars' own `k_right` says nothing about which relation it came from. The rule:
an output column keeps the name the query knows it by; a later column whose name an earlier output
already took is named by its relation's alias, `<alias>.<name>` (`b.k`; in a self join `t2.k`), which is
also how the query would write it. Only a column with no alias (from an unnamed subquery) whose name is
taken falls back to a numbered suffix (`k_2`). An explicit alias (`AS`) always wins.

An unqualified name that two joined relations both have is refused where it is written, listing the
qualified names it may mean, as DuckDB does (`write o.country or u.country`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from stream_dsl.bind.scope import ScopeColumn


def qualified_name(column: "ScopeColumn") -> str | None:
    """`alias.name` for a column a relation alias qualifies, else None."""
    return f"{column.qualifiers[0]}.{column.name}" if column.qualifiers else None


def _listing(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def ambiguous_message(text: str, found: Sequence["ScopeColumn"]) -> str:
    """Why `text` is ambiguous: the relations that have it, and the qualified names to write instead."""
    places = [c.qualifiers[0] if c.qualifiers else "a subquery" for c in found]
    candidates = [q for q in (qualified_name(c) for c in found) if q is not None]
    message = f"column '{text}' is ambiguous: it is in {_listing(places)}"
    if len(candidates) == len(found):
        message += f"; write {' or '.join(candidates)}"
    return message
