"""The catalog: named streams, tables, sinks and views that DDL statements fill.

Names match exactly first, then case-insensitively when that is unambiguous,
so `Events` finds `events` but two names differing only in case stay apart.

A view holds its bound plan, with the scans of the streams and tables it
reads. So that it never reads a definition that is gone, replacing one of
those keeps the view only when the columns stay the same (its scans then
read the new definition), and dropping one is refused while a view reads
it, as DuckDB and PostgreSQL refuse to leave a view without its table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from stream_dsl.errors import BindError, CatalogError, Span, did_you_mean
from stream_dsl.ir.definitions import SinkDef, SourceDef
from stream_dsl.ir.plan import Plan, Scan, scans, with_inputs


def _find(name: str, names: list[str]) -> str | None:
    if name in names:
        return name
    matches = [n for n in names if n.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


@dataclass
class Catalog:
    sources: dict[str, SourceDef] = field(default_factory=dict)
    sinks: dict[str, SinkDef] = field(default_factory=dict)
    views: dict[str, Plan] = field(default_factory=dict)
    check_files: bool = True  # CREATE reads a files source's path and first file (bind/create_check.py)

    # -------------------------------------------------------------- relations

    def relation_names(self) -> list[str]:
        return list(self.sources) + list(self.views)

    def _check_free(self, name: str, *, replace: bool, own: dict) -> bool:
        """True if `name` may be (re)defined in `own`; raises if it is taken elsewhere."""
        existing = _find(name, self.relation_names() + list(self.sinks))
        if existing is None:
            return True
        if replace and existing in own:
            return True
        raise CatalogError(f"'{existing}' already exists; use CREATE OR REPLACE or DROP it first")

    def add_source(self, source: SourceDef, *, replace: bool = False, if_not_exists: bool = False) -> None:
        if if_not_exists and _find(source.name, self.relation_names()) is not None:
            return
        self._check_free(source.name, replace=replace, own=self.sources)
        name = _find(source.name, list(self.sources)) or source.name
        readers = self._views_reading(name)
        if readers:
            old = self.sources[name]
            if [(f.name, f.dtype) for f in old.schema] != [(f.name, f.dtype) for f in source.schema]:
                raise CatalogError(
                    f"view '{readers[0]}' reads {old.kind} '{name}', whose columns this would change; "
                    f"DROP VIEW {readers[0]} first, then create it again"
                )
            for view in readers:
                self.views[view] = _reading(self.views[view], name, source)
        self.sources[name] = source

    def add_view(self, name: str, plan: Plan, *, replace: bool = False) -> None:
        self._check_free(name, replace=replace, own=self.views)
        self.views[_find(name, list(self.views)) or name] = plan

    def add_sink(self, sink: SinkDef, *, replace: bool = False, if_not_exists: bool = False) -> None:
        if if_not_exists and _find(sink.name, list(self.sinks)) is not None:
            return
        self._check_free(sink.name, replace=replace, own=self.sinks)
        self.sinks[_find(sink.name, list(self.sinks)) or sink.name] = sink

    def resolve(self, name: str, span: Span | None = None) -> Plan:
        """The plan a name in FROM stands for: a Scan of a source, or a view's plan."""
        found = _find(name, self.relation_names())
        if found is None:
            raise BindError(f"unknown stream or table '{name}'{did_you_mean(name, self.relation_names())}", span=span)
        if found in self.sources:
            return Scan(self.sources[found], span=span)
        return self.views[found]

    def source(self, name: str, span: Span | None = None) -> SourceDef:
        found = _find(name, list(self.sources))
        if found is None:
            raise BindError(f"unknown stream or table '{name}'{did_you_mean(name, self.sources)}", span=span)
        return self.sources[found]

    def sink(self, name: str, span: Span | None = None) -> SinkDef:
        found = _find(name, list(self.sinks))
        if found is None:
            raise BindError(f"unknown sink '{name}'{did_you_mean(name, self.sinks)}", span=span)
        return self.sinks[found]

    def drop(self, kind: str, name: str, *, if_exists: bool = False) -> None:
        """Remove a STREAM, TABLE, SINK or VIEW by name."""
        kind = kind.upper()
        if kind == "SINK":
            table: dict = self.sinks
        elif kind == "VIEW":
            table = self.views
        else:
            wanted = "stream" if kind == "STREAM" else "table"
            table = {k: v for k, v in self.sources.items() if v.kind == wanted}
        found = _find(name, list(table))
        if found is None:
            if if_exists:
                return
            raise CatalogError(f"unknown {kind.lower()} '{name}'{did_you_mean(name, table)}")
        owner = self.sinks if kind == "SINK" else self.views if kind == "VIEW" else self.sources
        readers = self._views_reading(found) if owner is self.sources else []
        if readers:
            raise CatalogError(f"view '{readers[0]}' reads {kind.lower()} '{found}'; DROP VIEW {readers[0]} first")
        del owner[found]

    def _views_reading(self, source: str) -> list[str]:
        """The views whose plan scans the stream or table named `source`."""
        return [view for view, plan in self.views.items() if any(s.source.name == source for s in scans(plan))]


def _reading(plan: Plan, name: str, source: SourceDef) -> Plan:
    """`plan` with its scans of `name` reading `source` (a definition of the same columns)."""
    if isinstance(plan, Scan):
        return replace(plan, source=source) if plan.source.name == name else plan
    return with_inputs(plan, tuple(_reading(child, name, source) for child in plan.inputs))
