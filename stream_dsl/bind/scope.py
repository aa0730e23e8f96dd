"""Name resolution: which plan column a name in a query stands for.

A `Scope` lists the columns a FROM clause makes visible. Each entry has the
name a query uses for it, the qualifiers that may prefix it (`e.price`),
and the unique plan column it stands for (after a join, a clashing right
column `name` is the plan column `name_right`). Both front ends resolve
names here, so they report the same errors with the same suggestions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from stream_dsl.ir import expr as E
from stream_dsl.bind.join_names import ambiguous_message
from stream_dsl.errors import BindError, Span, did_you_mean
from stream_dsl.ir.plan import WINDOW_END, WINDOW_START
from stream_dsl.ir.types import DataType, Schema


@dataclass(frozen=True, slots=True)
class ScopeColumn:
    """One visible column: `name` as a query writes it, `column` the plan column it reads."""

    name: str
    column: str
    dtype: DataType
    qualifiers: tuple[str, ...] = ()
    hidden: bool = False  # reached only as qualifier.name (an outer USING join's own key of one side), never by *

    def ref(self, span: Span | None = None) -> E.Column:
        return E.Column(self.column, self.dtype, span=span)


def match_names(wanted: str, candidates: Iterable[str]) -> list[str]:
    """Exact matches of `wanted`, else its case-insensitive matches."""
    candidates = list(candidates)
    exact = [c for c in candidates if c == wanted]
    return exact or [c for c in candidates if c.lower() == wanted.lower()]


def _listing(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


@dataclass(frozen=True, slots=True)
class Scope:
    """The columns visible to expressions, in output order.

    `extras` are visible by name but not expanded by `*`: the window_start
    and window_end columns an aggregate adds, referenced in its SELECT list.
    """

    columns: tuple[ScopeColumn, ...]
    extras: tuple[ScopeColumn, ...] = ()

    @classmethod
    def from_schema(cls, schema: Schema, qualifier: str | None = None) -> "Scope":
        """Every column of `schema` under its own name, optionally qualified."""
        quals = (qualifier,) if qualifier else ()
        return cls(tuple(ScopeColumn(f.name, f.name, f.dtype, quals) for f in schema))

    # ------------------------------------------------------------ building

    def qualified(self, qualifier: str | None) -> "Scope":
        """The same columns, known under `qualifier` only (a FROM alias)."""
        quals = (qualifier,) if qualifier else ()
        return Scope(tuple(replace(c, qualifiers=quals) for c in self.columns))

    def renamed(self, mapping: dict[str, str]) -> "Scope":
        """Point columns at new plan column names; columns absent from `mapping` are dropped."""
        return Scope(tuple(replace(c, column=mapping[c.column]) for c in self.columns if c.column in mapping))

    def __add__(self, other: "Scope") -> "Scope":
        return Scope(self.columns + other.columns)

    def with_window_columns(self) -> "Scope":
        """Add window_start and window_end (for a windowed aggregate's SELECT list and HAVING)."""
        names = {c.name for c in self.columns}
        extras = tuple(ScopeColumn(n, n, DataType.TIMESTAMP) for n in (WINDOW_START, WINDOW_END) if n not in names)
        return Scope(self.columns, extras)

    def without_extras(self) -> "Scope":
        return Scope(self.columns)

    def merge_using(self, left_column: str, right_qualifiers: tuple[str, ...]) -> "Scope":
        """Let the right side's qualifiers reach a USING key kept from the left side."""
        cols = tuple(
            replace(c, qualifiers=tuple(dict.fromkeys(c.qualifiers + right_qualifiers)))
            if c.column == left_column
            else c
            for c in self.columns
        )
        return Scope(cols, self.extras)

    # ------------------------------------------------------------ lookup

    @property
    def qualifiers(self) -> list[str]:
        return list(dict.fromkeys(q for c in self.columns for q in c.qualifiers))

    def names(self) -> list[str]:
        """Every name that resolves, for suggestions."""
        return list(dict.fromkeys([c.name for c in self.columns + self.extras] + [c.column for c in self.columns]))

    def lookup(self, parts: Sequence[str]) -> list[ScopeColumn]:
        """The distinct columns `parts` may mean (empty if none); raises for an unknown qualifier."""
        if len(parts) == 1:
            pool = tuple(c for c in self.columns if not c.hidden)
        else:
            pool = self._qualified_pool(parts[0])
        name = parts[-1]
        found = self._by_name(name, pool)
        if not found and len(parts) == 1:
            found = self._by_name(name, self.extras)
        if not found:
            # The plan's own name of a renamed column (user_id_right) also resolves.
            found = [c for c in pool if c.column in match_names(name, [c.column for c in pool])]
        unique: dict[str, ScopeColumn] = {}
        for c in found:
            unique.setdefault(c.column, c)
        return list(unique.values())

    @staticmethod
    def _by_name(name: str, pool: Sequence[ScopeColumn]) -> list[ScopeColumn]:
        wanted = set(match_names(name, [c.name for c in pool]))
        return [c for c in pool if c.name in wanted]

    def _qualified_pool(self, qualifier: str, span: Span | None = None) -> tuple[ScopeColumn, ...]:
        quals = match_names(qualifier, self.qualifiers)
        if len(quals) != 1:
            known = self.qualifiers
            hint = did_you_mean(qualifier, known) or (f" (known: {', '.join(known)})" if known else "")
            raise BindError(f"unknown table or alias '{qualifier}'{hint}", span=span)
        return tuple(c for c in self.columns if quals[0] in c.qualifiers)

    def resolve(self, parts: Sequence[str], span: Span | None = None) -> E.Column:
        """The column a (possibly qualified) name stands for, or a BindError at `span`."""
        text = ".".join(parts)
        if len(parts) > 2:
            raise BindError(f"cannot resolve '{text}': use column or alias.column", span=span)
        if len(parts) == 2:
            self._qualified_pool(parts[0], span)  # a clear error for an unknown qualifier
        found = self.lookup(parts)
        if len(found) == 1:
            return found[0].ref(span)
        if not found:
            pool = self.names() if len(parts) == 1 else [c.name for c in self._qualified_pool(parts[0])]
            hint = did_you_mean(parts[-1], pool)
            if not hint and parts[-1].lower() in (WINDOW_START, WINDOW_END):
                hint = " (window_start and window_end exist in a query that groups by TUMBLE, HOP or SESSION)"
            raise BindError(f"unknown column '{text}'{hint}", span=span)
        raise BindError(ambiguous_message(text, found), span=span)

    def expand_star(self, qualifier: str | None = None, span: Span | None = None) -> list[E.Column]:
        """The columns `*` or `qualifier.*` stands for, in order."""
        pool = [c for c in self.columns if not c.hidden] if qualifier is None else self._qualified_pool(qualifier, span)
        return [c.ref(span) for c in pool]
