"""What a source derives from its declared schema, derived once per schema object instead of every batch.

A source keeps one `Schema` object for all its batches, so what its reads
build from it (polars types, column expressions, an empty frame: 20-40 us
a batch) can be kept per object. The key is the object's id, and the kept
entry holds the object itself, so the id is not reused by another schema
while its entry lives; an entry found for an id is used only when it holds
that very object.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from stream_dsl.ir.types import Schema

T = TypeVar("T")

LIMIT = 256  # entries kept (a warm worker serves query after query: the oldest are dropped all at once)
_KEPT: dict[tuple[int, Callable[[Schema], Any]], tuple[Schema, Any]] = {}


def per_schema(schema: Schema, build: Callable[[Schema], T]) -> T:
    """`build(schema)`, made once per schema object (and per `build`)."""
    key = (id(schema), build)
    kept = _KEPT.get(key)
    if kept is not None and kept[0] is schema:
        return kept[1]
    value = build(schema)
    if len(_KEPT) >= LIMIT:
        _KEPT.clear()
    _KEPT[key] = (schema, value)
    return value
