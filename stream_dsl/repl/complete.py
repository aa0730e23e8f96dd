"""Tab completion for the REPL: keywords, functions, stream/table/sink names and column names.

What is offered depends on where the cursor is: after FROM or JOIN the
relations, after INTO the sinks, after `alias.` that relation's columns,
after a meta command its arguments; elsewhere the columns of the relations
the current statement names (all columns of every relation when it names
none yet), then functions, relations and keywords. Nothing is offered
inside strings and comments. The catalog is read at every keystroke, so
names defined a moment ago complete at once.

>>> import stream_dsl as sd
>>> from prompt_toolkit.document import Document
>>> from prompt_toolkit.completion import CompleteEvent
>>> ctx = sd.Context()
>>> ctx.sql("CREATE STREAM clicks (user_id STRING, url STRING) WITH (connector = 'memory')")
>>> completer = DSLCompleter(lambda: ctx.catalog)
>>> [c.text for c in completer.get_completions(Document("SELECT u"), CompleteEvent(completion_requested=True))][:4]
['user_id', 'url', 'ucase', 'upper']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from stream_dsl.catalog import Catalog
from stream_dsl.config import EXECUTORS
from stream_dsl.connectors import CONNECTORS
from stream_dsl.repl.input import mask
from stream_dsl.repl.lexer import META_COMMANDS, function_names, keywords, type_names
from stream_dsl.ir.types import Schema

__all__ = ["DSLCompleter", "Relation", "relations", "SETTING_NAMES", "FORMATS"]

SETTING_NAMES = ("workers", "executor", "group_size", "batch_interval", "optimize")
FORMATS = ("table", "csv", "json")
STARTERS = ("SELECT", "CREATE", "INSERT", "EXPLAIN", "SHOW", "DESCRIBE", "SET", "DROP", "WITH")
SHOWABLE = ("STREAMS", "TABLES", "SINKS", "VIEWS", "FUNCTIONS")
SETTING_VALUES = {
    "executor": EXECUTORS,
    "optimize": ("true", "false"),
    "group_size": ("auto",),
    "batch_interval": ("100ms", "1s"),
}

_WORD = re.compile(r"[^\W\d]\w*")
_CURRENT = re.compile(r"(?:[^\W\d]\w*\.)?\w*$")
_CONNECTOR_VALUE = re.compile(r"\bconnector\s*=\s*'(\w*)$", re.IGNORECASE)  # `WITH (connector = 'ka|`
_ALIAS = re.compile(r"\b(?:from|join)\s+([^\W\d]\w*)(?:\s+(?:as\s+)?([^\W\d]\w*))?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Relation:
    """A name FROM can read: its kind ('stream', 'table' or 'view') and its columns."""

    name: str
    kind: str
    schema: Schema


def relations(catalog: Catalog) -> dict[str, Relation]:
    """Every stream, table and view of the catalog by name."""
    found = {n: Relation(n, s.kind, s.schema) for n, s in catalog.sources.items()}
    found.update({n: Relation(n, "view", p.schema) for n, p in catalog.views.items()})
    return found


def _matches(candidates: Iterable[str], prefix: str) -> list[str]:
    low = prefix.lower()
    return [c for c in candidates if c.lower().startswith(low)]


def _cased(word: str, prefix: str) -> str:
    """Keywords in the case the user types them: lower case after a lower-case start."""
    return word.lower() if prefix[:1].islower() else word


class DSLCompleter(Completer):
    """Completes DSL text and meta commands against a catalog (`catalog()` is read on every call)."""

    def __init__(self, catalog: Callable[[], Catalog]) -> None:
        self.catalog = catalog
        self._paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        before = document.text_before_cursor
        if document.text.lstrip().startswith("\\"):
            yield from self._meta(before.lstrip(), complete_event)
            return
        yield from self._sql(document.text, len(before), complete_event)

    # ------------------------------------------------------------ SQL

    def _sql(self, text: str, cursor: int, event: CompleteEvent) -> Iterator[Completion]:
        masked, state = mask(text[:cursor])
        if state == "'":  # inside a string: only a connector name after `connector = '`
            typed = _CONNECTOR_VALUE.search(text[:cursor])
            if typed is not None:
                yield from self._plain(_matches(sorted(CONNECTORS), typed.group(1)), typed.group(1), "connector")
            return
        if state:  # inside a quoted name or a comment
            return
        masked_all = masked + mask(text)[0][cursor:]
        current = _CURRENT.search(masked)
        assert current is not None  # the pattern matches an empty word too
        word = current.group(0)
        if not word and not event.completion_requested:
            return
        start = masked.rfind(";", 0, cursor) + 1
        end = masked_all.find(";", cursor)
        statement = masked_all[start : end if end >= 0 else len(masked_all)]
        head = masked[start : cursor - len(word)]
        rels = relations(self.catalog())
        if "." in word:
            qualifier, partial = word.split(".", 1)
            relation = self._qualified(qualifier, statement, rels)
            if relation is not None:
                yield from self._columns([relation], partial)
            return
        previous = [w.upper() for w in _WORD.findall(head)]
        yield from self._in_context(previous, word, statement, rels)

    def _in_context(
        self, previous: list[str], word: str, statement: str, rels: dict[str, Relation]
    ) -> Iterator[Completion]:
        last = previous[-1] if previous else ""
        before_last = previous[-2] if len(previous) > 1 else ""
        if not previous:
            yield from self._keywords(STARTERS, word)
        elif last in ("FROM", "JOIN", "DESCRIBE", "DESC"):
            yield from self._relations(rels.values(), word)
        elif last == "INTO":
            yield from self._sinks(word)
        elif before_last == "DROP" and last in ("STREAM", "TABLE", "VIEW"):
            kind = last.lower()
            yield from self._relations([r for r in rels.values() if r.kind == kind], word)
        elif before_last == "DROP" and last == "SINK":
            yield from self._sinks(word)
        elif last in ("STREAM", "TABLE", "VIEW", "SINK") and "CREATE" in previous[-4:]:
            return  # a new name: nothing to complete
        elif last == "SHOW":
            yield from self._keywords(SHOWABLE, word)
        elif last == "SET":
            yield from self._plain(_matches(SETTING_NAMES, word), word, "setting")
        elif last == "EXPLAIN":
            yield from self._keywords(("SELECT", "INSERT", "ANALYZE"), word)
        else:
            yield from self._anywhere(word, statement, rels)

    def _anywhere(self, word: str, statement: str, rels: dict[str, Relation]) -> Iterator[Completion]:
        named = self._named(statement, rels)
        yield from self._columns(named or list(rels.values()), word)
        yield from self._plain(_matches(function_names(), word), word, "function")
        yield from self._relations(rels.values(), word)
        yield from self._keywords(type_names(), word, meta="type")
        yield from self._keywords(keywords(), word)

    @staticmethod
    def _named(statement: str, rels: dict[str, Relation]) -> list[Relation]:
        """The relations the statement mentions, in order of first mention."""
        by_lower = {n.lower(): r for n, r in rels.items()}
        found: dict[str, Relation] = {}
        for token in _WORD.findall(statement):
            relation = by_lower.get(token.lower())
            if relation is not None:
                found.setdefault(relation.name, relation)
        return list(found.values())

    @staticmethod
    def _qualified(qualifier: str, statement: str, rels: dict[str, Relation]) -> Relation | None:
        """The relation `qualifier.` refers to: an alias from FROM/JOIN, or a relation's own name."""
        by_lower = {n.lower(): r for n, r in rels.items()}
        for match in _ALIAS.finditer(statement):
            name, alias = match.group(1), match.group(2)
            if alias and alias.lower() == qualifier.lower() and name.lower() in by_lower:
                return by_lower[name.lower()]
        return by_lower.get(qualifier.lower())

    # ------------------------------------------------------------ meta commands

    def _meta(self, text: str, event: CompleteEvent) -> Iterator[Completion]:
        command, space, rest = text.partition(" ")
        if not space:
            for name in _matches(META_COMMANDS, command):
                hint, doc = META_COMMANDS[name]
                yield Completion(name, -len(command), display_meta=doc)
            return
        command = command.lower()
        argument = rest.lstrip()
        if command == "\\explain":
            yield from self._sql(argument, len(argument), event)
            return
        if command == "\\i":
            yield from self._paths.get_completions(Document(argument, len(argument)), event)
            return
        words = argument.split()
        if not argument or argument.endswith(" "):
            word, position = "", len(words) + 1
        else:
            word, position = words[-1], len(words)
        if command in ("\\describe", "\\d") and position == 1:
            yield from self._relations(relations(self.catalog()).values(), word)
        elif command == "\\set" and position == 1:
            yield from self._plain(_matches(SETTING_NAMES, word), word, "setting")
        elif command == "\\set" and position == 2:
            yield from self._plain(_matches(SETTING_VALUES.get(words[0].lower(), ()), word), word, "value")
        elif command == "\\format" and position == 1:
            yield from self._plain(_matches(FORMATS, word), word, "format")
        elif command == "\\timing" and position == 1:
            yield from self._plain(_matches(("on", "off"), word), word, "")

    # ------------------------------------------------------------ candidates

    @staticmethod
    def _columns(rels: Iterable[Relation], prefix: str) -> Iterator[Completion]:
        seen: set[str] = set()
        for relation in rels:
            for field in relation.schema:
                if field.name in seen or not field.name.lower().startswith(prefix.lower()):
                    continue
                seen.add(field.name)
                yield Completion(
                    field.name, -len(prefix), display_meta=f"{field.dtype.value} column of {relation.name}"
                )

    @staticmethod
    def _relations(rels: Iterable[Relation], prefix: str) -> Iterator[Completion]:
        for relation in rels:
            if relation.name.lower().startswith(prefix.lower()):
                yield Completion(relation.name, -len(prefix), display_meta=relation.kind)

    def _sinks(self, prefix: str) -> Iterator[Completion]:
        for name, sink in self.catalog().sinks.items():
            if name.lower().startswith(prefix.lower()):
                yield Completion(name, -len(prefix), display_meta=f"sink ({sink.option('connector') or '?'})")

    @staticmethod
    def _keywords(words: Iterable[str], prefix: str, meta: str = "keyword") -> Iterator[Completion]:
        for word in _matches(words, prefix):
            yield Completion(_cased(word, prefix), -len(prefix), display_meta=meta)

    @staticmethod
    def _plain(words: Iterable[str], prefix: str, meta: str) -> Iterator[Completion]:
        for word in words:
            yield Completion(word, -len(prefix), display_meta=meta)
