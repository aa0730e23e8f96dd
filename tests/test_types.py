"""DataType: one object per type (also across pickling into a worker), its polars dtype and its written form."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given, settings, strategies as st

from stream_dsl.bind.expr import resolve_type
from stream_dsl.errors import BindError
from stream_dsl.ir.types import DataType, decimal, list_of, map_of, struct_of, type_from_polars
from stream_dsl.frame.expr import written_type
from stream_dsl.sql.parser import parse_type
from stream_dsl.sql.unparse import unparse
from budget import examples

SCALARS = st.sampled_from(
    [DataType.BIGINT, DataType.INT, DataType.DOUBLE, DataType.STRING, DataType.BOOLEAN, DataType.TIMESTAMP]
)
FIELD_NAMES = st.sampled_from(["a", "b", "select", "Ünï", "two words"])


def types(leaves: st.SearchStrategy[DataType] = SCALARS) -> st.SearchStrategy[DataType]:
    return st.recursive(
        st.one_of(leaves, st.builds(lambda p, s: decimal(p, min(p, s)), st.integers(1, 38), st.integers(0, 38))),
        lambda inner: st.one_of(
            inner.map(list_of),
            st.builds(map_of, inner, inner),
            st.lists(st.tuples(FIELD_NAMES, inner), min_size=1, max_size=3, unique_by=lambda f: f[0]).map(struct_of),
        ),
        max_leaves=5,
    )


@settings(max_examples=examples(100))
@given(types())
def test_a_type_is_one_object_after_pickling_and_copying(dtype: DataType) -> None:
    assert pickle.loads(pickle.dumps(dtype)) is dtype
    assert copy.deepcopy(dtype) is dtype
    assert DataType(dtype.kind, dtype.params) is dtype


@settings(max_examples=examples(100))
@given(types())
def test_the_polars_dtype_maps_back_for_lists_and_scalars(dtype: DataType) -> None:
    if any(kind in dtype.value for kind in ("STRUCT", "MAP")):
        return  # polars has no map type; STRUCT dtypes map back once the engine reads them
    assert type_from_polars(dtype.polars) is dtype


@settings(max_examples=examples(100))
@given(types(st.sampled_from([DataType.BIGINT, DataType.INT, DataType.DOUBLE, DataType.STRING, DataType.BOOLEAN])))
def test_a_type_written_out_binds_back_to_itself(dtype: DataType) -> None:
    written = written_type(dtype)
    assert parse_type(unparse(written)) == written
    if not any(kind in dtype.value for kind in ("STRUCT", "MAP")):  # not bound yet
        assert resolve_type(written) is dtype


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BIGINT[]", list_of(DataType.BIGINT)),
        ("ARRAY<INT>", list_of(DataType.INT)),
        ("LIST<ARRAY<STRING>>", list_of(list_of(DataType.STRING))),
        ("double precision[]", list_of(DataType.DOUBLE)),
    ],
)
def test_list_types_in_every_spelling(text: str, expected: DataType) -> None:
    assert resolve_type(parse_type(text)) is expected


def test_an_unknown_element_type_is_named_where_it_is_written() -> None:
    with pytest.raises(BindError, match="unknown type 'BIGNT'") as info:
        resolve_type(parse_type("ARRAY<BIGNT>"))
    assert (info.value.line, info.value.column) == (1, 20)  # inside CAST(NULL AS ...)


def test_parameters_are_checked() -> None:
    with pytest.raises(TypeError, match="precision"):
        decimal(39, 2)
    with pytest.raises(TypeError, match="scale"):
        decimal(5, 6)
    with pytest.raises(TypeError, match="duplicate field"):
        struct_of([("a", DataType.INT), ("a", DataType.STRING)])
    with pytest.raises(TypeError):
        list_of(DataType.HUGEINT)
