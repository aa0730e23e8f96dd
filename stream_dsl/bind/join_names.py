"""Column names across joined relations: the output name of a repeated column, and the ambiguity error.

DuckDB's `SELECT *` over `a JOIN b` may repeat a name (`k`, ..., `k`); a polars frame cannot hold two
columns of one name, and polars' own `k_right` says nothing about which relation it came from. The rule:
an output column keeps the name the query knows it by; a later column whose name an earlier output
already took is named by its relation's alias, `<alias>.<name>` (`b.k`; in a self join `t2.k`), which is
also how the query would write it. Only a column with no alias (from an unnamed subquery) whose name is
taken falls back to a numbered suffix (`k_2`). An explicit alias (`AS`) always wins.

An unqualified name that two joined relations both have is refused where it is written, listing the
qualified names it may mean, as DuckDB does (`write o.country or u.country`).

The key of an outer USING join (`l FULL JOIN r USING (k)`) is one column, COALESCE(l.k, r.k), for `k`
and `*`; `l.k` and `r.k` are each side's own key, NULL in the rows the join padded, as in DuckDB.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # scope.py imports this module for its ambiguity message
    from stream_dsl.bind.scope import Scope, ScopeColumn


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


def outer_using_scope(
    left: "Scope", right: "Scope", right_names: dict[str, str], own_keys: Sequence[tuple[str, str, str, str]]
) -> "Scope":
    """The columns an outer USING join makes visible (module doc); `own_keys` as `plans.JoinResult`'s."""
    from stream_dsl.bind.scope import Scope

    own_left = {lk: own for lk, _, own, _ in own_keys}
    own_right = {rk: own for _, rk, _, own in own_keys}
    columns: list["ScopeColumn"] = []
    for c in left.columns:
        if c.column in own_left:  # the merged key, unqualified, then the left's own, qualified only
            columns.append(replace(c, qualifiers=()))
            columns.append(replace(c, column=own_left[c.column], hidden=True))
        else:
            columns.append(c)
    for c in right.columns:
        if c.column in own_right:
            columns.append(replace(c, column=own_right[c.column], hidden=True))
        elif c.column in right_names:
            columns.append(replace(c, column=right_names[c.column]))
    return Scope(tuple(columns))
