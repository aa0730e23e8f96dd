"""The AST → SQL unparser: parse(unparse(parse(s))) == parse(s).

Over every statement of the corpora (tests/corpus/*, tests/parse_corpus)
and over hypothesis-generated trees: expressions with every node class,
names that must be quoted (keywords, spaces, quotes), and whole statements
(queries with joins, subqueries, unions, WITH, ORDER BY, LIMIT; DDL).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from stream_dsl.errors import DSLError
from stream_dsl.sql import ast
from stream_dsl.sql.parser import parse, parse_expression, parse_statement
from stream_dsl.sql.unparse import AST_NODES, name, unparse, unparse_script

from budget import examples

TESTS = Path(__file__).parent
CORPUS_TEXTS = [
    block for block in (TESTS / "parse_corpus" / "valid.sql").read_text(encoding="utf-8").split("\n;\n")
] + [p.read_text() for p in sorted((TESTS / "corpus").glob("*/*.sql"))]


def _parsed(text: str) -> list[ast.Statement]:
    try:
        return parse(text)
    except DSLError:  # the invalid corpus: statements that do not parse have nothing to round-trip
        return []


CORPUS = [s for text in CORPUS_TEXTS for s in _parsed(text)]


def test_the_corpus_is_large_and_covers_every_statement_kind():
    assert len(CORPUS) >= 100
    kinds = {type(s) for s in CORPUS}
    assert kinds >= {
        ast.CreateSource,
        ast.CreateSink,
        ast.CreateView,
        ast.Insert,
        ast.QueryStatement,
        ast.Explain,
        ast.Show,
        ast.Describe,
        ast.SetOption,
        ast.Drop,
    }


@pytest.mark.parametrize("statement", CORPUS, ids=[f"{i:03d}_{type(s).__name__}" for i, s in enumerate(CORPUS)])
def test_corpus_statements_round_trip(statement):
    text = unparse(statement)
    assert parse_statement(text) == statement, text
    assert unparse(parse_statement(text)) == text  # and the text is a fixed point


def test_a_script_round_trips():
    statements = CORPUS[:20]
    assert parse(unparse_script(statements)) == statements


def test_every_ast_class_is_known():
    assert set(AST_NODES) >= {ast.Select, ast.Query, ast.Identifier, ast.Drop, ast.OrderItem}


def test_names_are_quoted_only_when_needed():
    assert [name(n) for n in ("price", "select", "Window", "a b", 'x"y', "timestamp", "_1")] == [
        "price",
        '"select"',
        '"Window"',
        '"a b"',
        '"x""y"',
        '"timestamp"',
        "_1",
    ]


def test_the_expr_repr_is_the_unparsed_text():
    e = (sd.col("price") * 2 > 10) & sd.col("sku").is_in(["a", "b"])
    assert repr(e) == "<Expr price * 2 > 10 AND sku IN ('a', 'b')>"
    assert parse_expression(repr(e)[len("<Expr ") : -1]) == e.node


# ---------------------------------------------------------------- generated trees

NAMES = st.sampled_from(["a", "b", "price", "window_start", "select", "a b", 'q"t', "Ünï", "timestamp", "key"])
SCALAR_TYPES = st.sampled_from(["INT", "BIGINT", "DOUBLE", "DOUBLE PRECISION", "STRING", "TIMESTAMP", "BOOLEAN"])
TYPES = st.recursive(
    st.one_of(
        SCALAR_TYPES.map(ast.TypeName),
        st.builds(lambda p, s: ast.TypeName("DECIMAL", (p, min(p, s))), st.integers(1, 38), st.integers(0, 38)),
    ),
    lambda inner: st.one_of(
        inner.map(lambda t: ast.TypeName("ARRAY", members=(t,))),
        st.builds(lambda k, v: ast.TypeName("MAP", members=(k, v)), inner, inner),
        st.lists(st.tuples(NAMES, inner), min_size=1, max_size=3, unique_by=lambda f: f[0].lower()).map(
            lambda fs: ast.TypeName("STRUCT", members=tuple(t for _, t in fs), field_names=tuple(n for n, _ in fs))
        ),
    ),
    max_leaves=4,
)
COMPARISONS = ["=", "<>", "<", "<=", ">", ">="]
OPS = st.sampled_from(["OR", "AND", *COMPARISONS, "+", "-", "||", "*", "/", "%"])

LEAVES = st.one_of(
    st.lists(NAMES, min_size=1, max_size=2).map(lambda parts: ast.Identifier(tuple(parts))),
    st.integers(0, 10**12).map(ast.NumberLit),
    st.floats(0, 1e20, allow_nan=False, allow_infinity=False).map(ast.NumberLit),
    st.text(alphabet="ab' %\"\n", max_size=4).map(ast.StringLit),
    st.booleans().map(ast.BoolLit),
    st.just(ast.NullLit()),
    st.builds(
        ast.IntervalLit,
        st.sampled_from(["10", "1.5", "5 seconds", "1m"]),
        st.sampled_from([None, "SECOND", "MINUTE", "MILLISECOND", "HOUR", "DAY"]),
    ),
    st.builds(ast.TimestampLit, st.sampled_from(["2024-01-01 00:00:00", "2024-01-01T10:00:00.5"])),
)


def extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    items = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        st.builds(ast.BinaryOp, OPS, children, children),
        st.builds(ast.UnaryOp, st.sampled_from(["NOT", "-", "+"]), children),
        st.builds(ast.IsNull, children, negated=st.booleans()),
        st.builds(ast.InList, children, items, negated=st.booleans()),
        st.builds(ast.Between, children, children, children, negated=st.booleans()),
        st.builds(ast.Like, children, children, negated=st.booleans()),
        st.builds(ast.Cast, children, TYPES),
        st.builds(ast.FuncCall, st.sampled_from(["F", "UPPER", "LEFT", "COUNT"]), items, distinct=st.booleans()),
        st.builds(ast.FuncCall, st.sampled_from(["F", "NOW"]), st.just(())),
        st.just(ast.FuncCall("COUNT", (), star=True)),
        st.builds(
            ast.WindowCall,
            st.builds(ast.FuncCall, st.sampled_from(["ROW_NUMBER", "RANK", "F"]), st.just(())),
            st.lists(children, max_size=2).map(tuple),
            st.lists(st.builds(ast.OrderItem, children, st.booleans(), st.booleans()), max_size=2).map(tuple),
        ),
        st.builds(
            ast.Case,
            st.none() | children,
            st.lists(st.tuples(children, children), min_size=1, max_size=2).map(tuple),
            st.none() | children,
        ),
    )


EXPRS = st.recursive(LEAVES, extend, max_leaves=10)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRS)
def test_generated_expressions_round_trip(tree):
    text = unparse(tree)
    assert parse_expression(text) == tree, text


def _select(draw, depth: int) -> ast.Select:
    items = draw(st.lists(st.builds(ast.SelectItem, EXPRS, st.none() | NAMES), min_size=1, max_size=3))
    if draw(st.booleans()):
        items.insert(0, ast.SelectItem(ast.Star(draw(st.none() | NAMES))))
    return ast.Select(
        tuple(items),
        from_=draw(_from_items(depth)),
        where=draw(st.none() | EXPRS),
        group_by=tuple(draw(st.lists(EXPRS, max_size=2))),
        having=draw(st.none() | EXPRS),
        distinct=draw(st.booleans()),
        emit=draw(st.sampled_from([None, "CHANGES", "WINDOW CLOSE"])),
        qualify=draw(st.none() | EXPRS),
    )


def _from_items(depth: int) -> st.SearchStrategy:
    table = st.builds(ast.TableRef, NAMES, st.none() | NAMES)
    primary = table if depth <= 0 else table | st.builds(ast.SubqueryRef, queries(depth - 1), st.none() | NAMES)
    primary = primary | _window_tvfs(depth)

    @st.composite
    def joined(draw):
        item = draw(primary)
        for _ in range(draw(st.integers(0, 2))):
            using = draw(st.none() | st.lists(NAMES, min_size=1, max_size=2).map(tuple))
            on = None if using is not None else draw(EXPRS)
            item = ast.Join(item, draw(primary), draw(st.sampled_from(["INNER", "LEFT"])), on=on, using=using)
        return item

    return st.none() | joined()


def _window_tvfs(depth: int) -> st.SearchStrategy[ast.WindowTVF]:
    """TABLE(KIND(TABLE t | TABLE (query) [PARTITION BY ...], DESCRIPTOR(ts), sizes...)) [AS alias]."""
    column = NAMES.map(lambda n: ast.Identifier((n,)))
    inner = st.builds(ast.TableRef, NAMES)
    if depth > 0:
        inner = inner | st.builds(ast.SubqueryRef, queries(depth - 1))

    @st.composite
    def build(draw):
        kind = draw(st.sampled_from(["TUMBLE", "HOP", "CUMULATE", "SESSION"]))
        count = 2 if kind in ("HOP", "CUMULATE") else 1
        sizes = tuple(draw(st.lists(EXPRS, min_size=count, max_size=count)))
        keys = tuple(draw(st.lists(column, max_size=2))) if kind == "SESSION" else ()
        return ast.WindowTVF(kind, draw(inner), draw(column), sizes, keys, draw(st.none() | NAMES))

    return build()


def queries(depth: int = 1) -> st.SearchStrategy[ast.Query]:
    @st.composite
    def build(draw):
        body = _select(draw, depth)
        for _ in range(draw(st.integers(0, 2))):
            right = _select(draw, depth) if depth <= 0 or draw(st.booleans()) else draw(queries(depth - 1))
            if isinstance(right, ast.Query) and not (right.ctes or right.order_by or right.limit is not None):
                right = right.body  # the parser unwraps a parenthesized query that has nothing of its own
            body = ast.SetOp(body, right, all=draw(st.booleans()))
        ctes: tuple = ()
        if depth > 0:
            ctes = tuple(draw(st.lists(st.tuples(NAMES, queries(depth - 1)), max_size=1)))
        order = tuple(draw(st.lists(st.builds(ast.OrderItem, EXPRS, st.booleans(), st.booleans()), max_size=2)))
        return ast.Query(body, ctes=ctes, limit=draw(st.none() | st.integers(0, 100)), order_by=order)

    return build()


OPTIONS = st.lists(
    st.tuples(
        st.sampled_from(["connector", "path", "format.x", "odd key", "with"]), st.text(alphabet="ab '/", max_size=4)
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda o: o[0].lower(),
).map(tuple)
COLUMNS = st.lists(st.builds(ast.ColumnDef, NAMES, TYPES, st.booleans()), min_size=1, max_size=3).map(tuple)
STATEMENTS = st.one_of(
    st.builds(ast.QueryStatement, queries()),
    st.builds(ast.Insert, NAMES, queries()),
    st.builds(
        ast.Explain, st.builds(ast.QueryStatement, queries(0)) | st.builds(ast.Insert, NAMES, queries(0)), st.booleans()
    ),
    st.builds(ast.CreateView, NAMES, queries(), st.booleans()),
    st.builds(
        ast.CreateSource,
        st.sampled_from(["STREAM", "TABLE"]),
        NAMES,
        COLUMNS,
        st.none() | st.builds(ast.WatermarkDef, NAMES, EXPRS),
        OPTIONS,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(ast.CreateSink, NAMES, OPTIONS, st.booleans(), st.booleans()),
    st.builds(ast.Show, st.sampled_from(["STREAMS", "TABLES", "SINKS", "VIEWS", "FUNCTIONS"])),
    st.builds(ast.Describe, NAMES),
    st.builds(
        ast.SetOption,
        st.sampled_from(["workers", "optimizer.merge_filters", "x.y.z"]),
        st.text(alphabet="ab '1", max_size=4),
    ),
    st.builds(ast.Drop, st.sampled_from(["STREAM", "TABLE", "SINK", "VIEW"]), NAMES, st.booleans()),
)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STATEMENTS)
def test_generated_statements_round_trip(statement):
    text = unparse(statement)
    assert parse_statement(text) == statement, text
