"""Parser tests: every statement form, precedence, positions, and error messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream_dsl.sql import ast
from stream_dsl.errors import DSLError, ParseError, Span
from stream_dsl.sql.parser import MAX_DEPTH, parse, parse_expression, parse_statement

CORPUS = Path(__file__).parent / "parse_corpus" / "valid.sql"


def corpus() -> list[tuple[str, str]]:
    """(expected AST class name, statement text) for each block of valid.sql."""
    blocks = CORPUS.read_text(encoding="utf-8").split("\n;\n")
    cases = []
    for block in blocks:
        match = re.search(r"^-- expect: (\w+)$", block, re.MULTILINE)
        if match:
            cases.append((match.group(1), block))
    return cases


def I(*parts: str) -> ast.Identifier:  # noqa: E743 - short helper for AST literals
    return ast.Identifier(parts)


def N(value: int | float) -> ast.NumberLit:
    return ast.NumberLit(value)


def S(value: str) -> ast.StringLit:
    return ast.StringLit(value)


def B(op: str, left: ast.Expr, right: ast.Expr) -> ast.BinaryOp:
    return ast.BinaryOp(op, left, right)


def select(text: str) -> ast.Select:
    statement = parse_statement(text)
    assert isinstance(statement, ast.QueryStatement)
    assert isinstance(statement.query.body, ast.Select)
    return statement.query.body


# ---------------------------------------------------------------- valid statements


def test_corpus_is_large_enough() -> None:
    cases = corpus()
    assert len(cases) >= 60
    kinds = {kind for kind, _ in cases}
    assert kinds == {
        "CreateSource",
        "CreateSink",
        "CreateView",
        "Insert",
        "QueryStatement",
        "Explain",
        "Show",
        "Describe",
        "SetOption",
        "Drop",
    }


@pytest.mark.parametrize(("kind", "text"), corpus(), ids=lambda v: v if len(v) < 20 else None)
def test_corpus_statement_parses_to_expected_node(kind: str, text: str) -> None:
    statement = parse_statement(text)
    assert type(statement).__name__ == kind
    assert statement.span is not None


def test_whole_corpus_as_one_script() -> None:
    statements = parse(CORPUS.read_text(encoding="utf-8"))
    assert [type(s).__name__ for s in statements] == [kind for kind, _ in corpus()]


# ---------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a OR b AND c", B("OR", I("a"), B("AND", I("b"), I("c")))),
        ("a AND b OR c", B("OR", B("AND", I("a"), I("b")), I("c"))),
        ("NOT a = b", ast.UnaryOp("NOT", B("=", I("a"), I("b")))),
        ("NOT a AND b", B("AND", ast.UnaryOp("NOT", I("a")), I("b"))),
        ("NOT NOT a", ast.UnaryOp("NOT", ast.UnaryOp("NOT", I("a")))),
        ("-x * y", B("*", ast.UnaryOp("-", I("x")), I("y"))),
        ("a || b = c", B("=", B("||", I("a"), I("b")), I("c"))),
        ("a + b * c", B("+", I("a"), B("*", I("b"), I("c")))),
        ("(a + b) * c", B("*", B("+", I("a"), I("b")), I("c"))),
        ("a - b - c", B("-", B("-", I("a"), I("b")), I("c"))),
        ("a / b % c", B("%", B("/", I("a"), I("b")), I("c"))),
        ("a + b || c", B("||", B("+", I("a"), I("b")), I("c"))),
        ("a < b + 1", B("<", I("a"), B("+", I("b"), N(1)))),
        ("a != b", B("<>", I("a"), I("b"))),
        ("a BETWEEN 1 AND 2 AND b", B("AND", ast.Between(I("a"), N(1), N(2)), I("b"))),
        (
            "x AND a NOT BETWEEN b + 1 AND c * 2 AND y",
            B(
                "AND",
                B("AND", I("x"), ast.Between(I("a"), B("+", I("b"), N(1)), B("*", I("c"), N(2)), negated=True)),
                I("y"),
            ),
        ),
        ("a IS NULL OR b IS NOT NULL", B("OR", ast.IsNull(I("a")), ast.IsNull(I("b"), negated=True))),
        (
            "a = 1 OR b IN (1, 2) AND c NOT IN ('x')",
            B(
                "OR",
                B("=", I("a"), N(1)),
                B("AND", ast.InList(I("b"), (N(1), N(2))), ast.InList(I("c"), (S("x"),), negated=True)),
            ),
        ),
        ("x NOT LIKE 'a' || 'b'", ast.Like(I("x"), B("||", S("a"), S("b")), negated=True)),
        ("NOT x LIKE 'a%'", ast.UnaryOp("NOT", ast.Like(I("x"), S("a%")))),
        ("-x::INT", ast.UnaryOp("-", ast.Cast(I("x"), ast.TypeName("INT")))),
        ("a::int::string", ast.Cast(ast.Cast(I("a"), ast.TypeName("INT")), ast.TypeName("STRING"))),
        ("- - 1", ast.UnaryOp("-", ast.UnaryOp("-", N(1)))),
        ("a * -b", B("*", I("a"), ast.UnaryOp("-", I("b")))),
        ("1 + 2 * 3 - 4", B("-", B("+", N(1), B("*", N(2), N(3))), N(4))),
        ("a = b = c", B("=", B("=", I("a"), I("b")), I("c"))),
        ("a + 1 IS NULL", ast.IsNull(B("+", I("a"), N(1)))),
    ],
)
def test_precedence(text: str, expected: ast.Expr) -> None:
    assert parse_expression(text) == expected


def test_where_uses_the_same_precedence() -> None:
    where = select("SELECT * FROM t WHERE a OR b AND NOT c").where
    assert where == B("OR", I("a"), B("AND", I("b"), ast.UnaryOp("NOT", I("c"))))


# ---------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", N(42)),
        ("1.5", N(1.5)),
        (".5", N(0.5)),
        ("1e3", N(1000.0)),
        ("2.5E-3", N(0.0025)),
        ("'it''s'", S("it's")),
        ("''", S("")),
        ("TRUE", ast.BoolLit(True)),
        ("false", ast.BoolLit(False)),
        ("NULL", ast.NullLit()),
        ("TIMESTAMP '2024-01-01 00:00:00'", ast.TimestampLit("2024-01-01 00:00:00")),
        ("INTERVAL '10 seconds'", ast.IntervalLit("10 seconds", None)),
        ("CAST(a AS double precision)", ast.Cast(I("a"), ast.TypeName("DOUBLE PRECISION"))),
        ("CAST(a AS VARCHAR(10))", ast.Cast(I("a"), ast.TypeName("VARCHAR", (10,)))),
        ("a::Timestamp", ast.Cast(I("a"), ast.TypeName("TIMESTAMP"))),
        ("upper(name)", ast.FuncCall("UPPER", (I("name"),))),
        ("now()", ast.FuncCall("NOW", ())),
        ("count(*)", ast.FuncCall("COUNT", (), star=True)),
        ("Count(DISTINCT user_id)", ast.FuncCall("COUNT", (I("user_id"),), distinct=True)),
        ("tumble(ts, INTERVAL '10' SECOND)", ast.FuncCall("TUMBLE", (I("ts"), ast.IntervalLit("10", "SECOND")))),
        ("CASE WHEN a THEN 1 WHEN b THEN 2 ELSE 3 END", ast.Case(None, ((I("a"), N(1)), (I("b"), N(2))), N(3))),
        ("CASE x WHEN 1 THEN 'one' END", ast.Case(I("x"), ((N(1), S("one")),), None)),
        ("t.price", I("t", "price")),
        ('"T"."Weird Col"', I("T", "Weird Col")),
        ("timestamp", I("timestamp")),
        ("window_start", I("window_start")),
    ],
)
def test_expression_forms(text: str, expected: ast.Expr) -> None:
    assert parse_expression(text) == expected


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("INTERVAL '1' MILLISECOND", "1", "MILLISECOND"),
        ("INTERVAL '2' milliseconds", "2", "MILLISECOND"),
        ("INTERVAL '10' SECOND", "10", "SECOND"),
        ("interval '10' seconds", "10", "SECOND"),
        ("INTERVAL '5' Minute", "5", "MINUTE"),
        ("INTERVAL '5' MINUTES", "5", "MINUTE"),
        ("INTERVAL '1' HOUR", "1", "HOUR"),
        ("INTERVAL '3' hours", "3", "HOUR"),
        ("INTERVAL '1' DAY", "1", "DAY"),
        ("INTERVAL '7' DAYS", "7", "DAY"),
        ("INTERVAL 8 SECONDS", "8", "SECOND"),
        ("INTERVAL '1 minute'", "1 minute", None),
    ],
)
def test_interval_units(text: str, value: str, unit: str | None) -> None:
    assert parse_expression(text) == ast.IntervalLit(value, unit)


def test_numbers_keep_int_and_float_apart() -> None:
    assert type(parse_expression("10").value) is int
    assert type(parse_expression("10.0").value) is float
    assert type(parse_expression("1e1").value) is float


def test_unit_words_and_non_reserved_words_are_names_elsewhere() -> None:
    items = select("SELECT second, day, type, key, value, data, format, count FROM t").items
    assert [item.expr for item in items] == [
        I(n) for n in ("second", "day", "type", "key", "value", "data", "format", "count")
    ]


def test_keyword_prefixes_are_names() -> None:
    items = select("SELECT selected, from_ts, order_id, end_time, streams FROM t").items
    assert [item.expr.parts[0] for item in items] == ["selected", "from_ts", "order_id", "end_time", "streams"]


# ---------------------------------------------------------------- identifiers and keywords


def test_keywords_are_case_insensitive() -> None:
    lower = parse_statement("select distinct a from t where a is not null group by a having count(*) > 1 emit changes")
    mixed = parse_statement("SeLeCt DiStInCt a FrOm t WhErE a Is NoT nUlL gRoUp By a HaViNg CoUnT(*) > 1 EmIt ChAnGeS")
    assert lower == mixed
    assert mixed.query.body.emit == "CHANGES"
    assert mixed.query.body.distinct


def test_unquoted_identifiers_keep_their_case() -> None:
    item = select("SELECT MyCol AS MyAlias FROM MyTable").items[0]
    assert item.expr == I("MyCol")
    assert item.alias == "MyAlias"
    assert select("SELECT 1 FROM MyTable").from_ == ast.TableRef("MyTable")


def test_quoted_identifiers() -> None:
    items = select('SELECT "Select", "a""b", `from`, `x``y`, "with space" AS "Out Name" FROM "My Table"').items
    assert [i.expr for i in items] == [I("Select"), I('a"b'), I("from"), I("x`y"), I("with space")]
    assert items[-1].alias == "Out Name"
    assert parse_statement('DESCRIBE "Mixed Case"') == ast.Describe("Mixed Case")


def test_reserved_words_need_quotes() -> None:
    with pytest.raises(ParseError):
        parse_statement("SELECT from FROM t")
    assert select('SELECT "from" FROM t').items[0].expr == I("from")


@pytest.mark.parametrize("word", ["right", "full", "cross", "natural"])
def test_join_words_are_reserved_so_never_an_alias(word) -> None:
    with pytest.raises(ParseError):
        parse_statement(f"SELECT * FROM s {word} JOIN t ON s.k = t.k AND {word}.k = 1")
    with pytest.raises(ParseError):
        parse_statement(f"SELECT * FROM s AS {word}")
    assert select(f'SELECT * FROM s AS "{word}"').from_.alias == word


# ---------------------------------------------------------------- positions


def test_span_of_a_column_ref_on_line_3() -> None:
    statement = parse_statement("SELECT\n  a,\n    price * 2 AS doubled\nFROM t")
    item = statement.query.body.items[1]
    assert item.expr.left == I("price")
    assert item.expr.left.span == Span(3, 5, 3, 10)
    assert item.expr.span == Span(3, 5, 3, 14)
    assert item.span == Span(3, 5, 3, 25)
    assert statement.query.body.from_.span == Span(4, 6, 4, 7)


def test_every_node_has_a_span() -> None:
    """Walk every AST node reachable from the corpus; each one carries a position."""
    pending: list[object] = list(parse(CORPUS.read_text(encoding="utf-8")))
    seen = 0
    while pending:
        node = pending.pop()
        if isinstance(node, (tuple, list)):
            pending.extend(node)
        elif hasattr(node, "__dataclass_fields__"):
            assert node.span is not None, node
            seen += 1
            pending.extend(getattr(node, f) for f in node.__dataclass_fields__ if f != "span")
    assert seen > 500


def test_statement_spans_in_a_script() -> None:
    statements = parse("SHOW STREAMS;\n\n  DESCRIBE t;\nDROP SINK s")
    assert [s.span.line for s in statements] == [1, 3, 4]
    assert statements[1].span.column == 3


# ---------------------------------------------------------------- statements in detail


def test_create_stream_details() -> None:
    statement = parse_statement(
        "CREATE OR REPLACE STREAM IF NOT EXISTS s (id BIGINT NOT NULL, d double precision, "
        "v varchar(3), ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND) "
        "WITH (connector = 'files', rate = 1000, realtime = TRUE, off = -5, "
        "format.ignore_errors = true, 'quoted key' = 'x', Mode = batch)"
    )
    assert statement == ast.CreateSource(
        kind="STREAM",
        name="s",
        columns=(
            ast.ColumnDef("id", ast.TypeName("BIGINT"), not_null=True),
            ast.ColumnDef("d", ast.TypeName("DOUBLE PRECISION")),
            ast.ColumnDef("v", ast.TypeName("VARCHAR", (3,))),
            ast.ColumnDef("ts", ast.TypeName("TIMESTAMP")),
        ),
        watermark=ast.WatermarkDef("ts", B("-", I("ts"), ast.IntervalLit("2", "SECOND"))),
        options=(
            ("connector", "files"),
            ("rate", "1000"),
            ("realtime", "true"),
            ("off", "-5"),
            ("format.ignore_errors", "true"),
            ("quoted key", "x"),
            ("Mode", "batch"),
        ),
        if_not_exists=True,
        or_replace=True,
    )


def test_create_table_sink_view() -> None:
    assert parse_statement("CREATE TABLE t (a INT) WITH (x = 'y')").kind == "TABLE"
    assert parse_statement("CREATE SINK IF NOT EXISTS o WITH (connector = 'files')") == ast.CreateSink(
        "o", (("connector", "files"),), if_not_exists=True
    )
    view = parse_statement("CREATE OR REPLACE STREAM v AS SELECT 1")
    assert isinstance(view, ast.CreateView) and view.or_replace and view.name == "v"


def test_joins_chain_left_associatively() -> None:
    from_ = select(
        "SELECT * FROM a JOIN b ON a.x = b.x LEFT OUTER JOIN c USING (x, y) INNER JOIN (SELECT 1 AS x) AS d ON TRUE"
    ).from_
    assert isinstance(from_, ast.Join) and from_.kind == "INNER"
    assert isinstance(from_.right, ast.SubqueryRef) and from_.right.alias == "d"
    middle = from_.left
    assert middle.kind == "LEFT" and middle.using == ("x", "y") and middle.on is None
    inner = middle.left
    assert inner == ast.Join(ast.TableRef("a"), ast.TableRef("b"), "INNER", on=B("=", I("a", "x"), I("b", "x")))


def test_select_clauses() -> None:
    body = select(
        "SELECT DISTINCT t.*, a x, b AS y, * FROM events e WHERE a > 1 "
        "GROUP BY a, TUMBLE(ts, INTERVAL '1' MINUTE) HAVING COUNT(*) > 2 "
        "EMIT ON WINDOW CLOSE"
    )
    assert body.distinct
    assert [i.expr for i in body.items] == [ast.Star("t"), I("a"), I("b"), ast.Star()]
    assert [i.alias for i in body.items] == [None, "x", "y", None]
    assert body.from_ == ast.TableRef("events", "e")
    assert body.group_by[1] == ast.FuncCall("TUMBLE", (I("ts"), ast.IntervalLit("1", "MINUTE")))
    assert body.having == B(">", ast.FuncCall("COUNT", (), star=True), N(2))
    assert body.emit == "WINDOW CLOSE"


def test_union_with_and_limit() -> None:
    query = parse_statement(
        "WITH a AS (SELECT 1 AS x), b AS (SELECT 2 AS x) "
        "SELECT x FROM a UNION ALL SELECT x FROM b UNION SELECT 3 LIMIT 7"
    ).query
    assert [name for name, _ in query.ctes] == ["a", "b"]
    assert query.limit == 7
    top = query.body
    assert isinstance(top, ast.SetOp) and not top.all
    assert isinstance(top.left, ast.SetOp) and top.left.all
    assert isinstance(top.left.left, ast.Select)


def test_parenthesized_queries_unwrap() -> None:
    query = parse_statement("((SELECT 1) UNION ALL (SELECT 2))").query
    assert isinstance(query.body, ast.SetOp)
    assert isinstance(query.body.left, ast.Select) and isinstance(query.body.right, ast.Select)
    kept = parse_statement("(SELECT 1 LIMIT 1) UNION ALL SELECT 2").query.body
    assert isinstance(kept.left, ast.Query) and kept.left.limit == 1


def test_insert_explain_show_describe_set_drop() -> None:
    insert = parse_statement("INSERT INTO out SELECT * FROM t")
    assert isinstance(insert, ast.Insert) and insert.sink == "out"
    explain = parse_statement("EXPLAIN ANALYZE INSERT INTO out SELECT * FROM t")
    assert explain.analyze and isinstance(explain.statement, ast.Insert)
    explain = parse_statement("explain select 1")
    assert not explain.analyze and isinstance(explain.statement, ast.QueryStatement)
    assert parse_statement("show functions") == ast.Show("FUNCTIONS")
    assert parse_statement("DESC events") == ast.Describe("events")
    assert parse_statement("SET group_size = 'auto'") == ast.SetOption("group_size", "auto")
    assert parse_statement("SET batch.interval TO '1s'") == ast.SetOption("batch.interval", "1s")
    assert parse_statement("SET workers = 4") == ast.SetOption("workers", "4")
    assert parse_statement("SET optimize = FALSE") == ast.SetOption("optimize", "false")
    assert parse_statement("SET executor TO inline") == ast.SetOption("executor", "inline")
    assert parse_statement("DROP VIEW IF EXISTS v") == ast.Drop("VIEW", "v", if_exists=True)
    assert parse_statement("drop table t") == ast.Drop("TABLE", "t")


# ---------------------------------------------------------------- comments and scripts


def test_comments_are_ignored() -> None:
    plain = parse_statement("SELECT a FROM t WHERE a > 1")
    commented = parse_statement(
        "-- leading comment\nSELECT /* inline */ a -- after a\n"
        "FROM t /* multi\nline ; with semicolon */ WHERE a > 1 -- end"
    )
    assert plain == commented


def test_multi_statement_script() -> None:
    script = """
        CREATE STREAM s (a INT) WITH (connector = 'files');  -- one
        SELECT ';' FROM s;;                                  -- a ';' inside a string
        ;
        DROP STREAM s
    """
    statements = parse(script)
    assert [type(s) for s in statements] == [ast.CreateSource, ast.QueryStatement, ast.Drop]
    assert statements[1].query.body.items[0].expr == S(";")


def test_trailing_semicolon_is_optional() -> None:
    assert parse("SHOW STREAMS") == parse("SHOW STREAMS;") == [ast.Show("STREAMS")]
    assert parse_statement("SHOW STREAMS ;") == ast.Show("STREAMS")


def test_empty_script() -> None:
    assert parse("") == []
    assert parse(" ;; -- nothing\n") == []


def test_parse_statement_wants_exactly_one() -> None:
    with pytest.raises(ParseError, match="found none"):
        parse_statement("  -- nothing")
    with pytest.raises(ParseError, match="found 2") as info:
        parse_statement("SHOW STREAMS;\nSHOW TABLES")
    assert (info.value.line, info.value.column) == (2, 1)


def test_parse_expression_rejects_statements_and_junk() -> None:
    for text in ("SELECT 1", "a b", "*", "a,", ""):
        with pytest.raises(ParseError):
            parse_expression(text)


# ---------------------------------------------------------------- errors

INVALID = [
    # (text, line, column, part of the message)
    ("SELECT a AS x FORM t", 1, 15, "unexpected 'FORM' (expected one of: FROM, WHERE, GROUP BY"),
    ("SELECT a AS x FORM t", 1, 15, "did you mean FROM?"),
    ("SELECT a FORM t", 1, 15, "is 'FORM' a misspelled FROM?"),
    ("SELECT FROM t", 1, 8, "the select list is empty"),
    ("SELECT a, FROM t", 1, 11, "trailing comma"),
    ("SELECT a FROM", 1, 14, "unexpected end of input"),
    ("SELECT a FROM t WHERE", 1, 22, "unexpected end of input (expected an expression)"),
    ("SELECT 'abc", 1, 8, "unterminated string"),
    ('SELECT "abc FROM t', 1, 8, "unterminated quoted name"),
    ("SELECT a /* never closed", 1, 10, "unterminated /* comment"),
    ("SELECT # FROM t", 1, 8, "unexpected character '#'"),
    ("SELECT a FROM t GROUP a", 1, 23, "expected BY"),
    ("SELECT a FROM t\nWHERE a = = 1", 2, 11, "unexpected '='"),
    ("SELECT a FROM t JOIN u", 1, 23, "ON, USING"),
    ("SELECT count(a FROM t", 1, 22, "unexpected end of input"),  # `f(a FROM t)` is EXTRACT's form
    ("SELECT count(a FROM t)", 1, 8, "'count(x FROM y)' is not a function call; EXTRACT is"),
    ("SELECT (a + 1 FROM t", 1, 15, "expected one of: ')', an operator"),
    ("SELECT a FROM t ORDER a", 1, 23, "expected BY"),
    ("SELECT a FROM t ORDER BY a DESC NULLS", 1, 38, "expected one of: FIRST, LAST"),
    ("SELECT a FROM t LIMIT 1.5", 1, 23, "whole number"),
    ("SELECT a FROM t LIMIT x", 1, 23, "expected a number"),
    ("CREATE STREAM s (a INT,)", 1, 24, "trailing comma"),
    ("CREATE STREAM s (a INT PRECISION)", 1, 24, "PRECISION can only follow DOUBLE"),
    ("CREATE STREAM s (a INT) WITH (x = )", 1, 35, "unexpected ')'"),
    ("CREATE STREAM s (a INT) WITH (x = 'a', x = 'b')", 1, 40, "duplicate option 'x'"),
    ("CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS ts, WATERMARK FOR ts AS ts)", 1, 56, "only one WATERMARK"),
    ("CREATE STREAM s", 1, 16, "unexpected end of input"),
    ("CREATE SINK s", 1, 14, "expected WITH"),
    ("CREATE VIEW v SELECT 1", 1, 15, "expected AS"),
    ("INSERT out SELECT 1", 1, 8, "expected INTO"),
    ("DROP INDEX i", 1, 6, "expected one of: SINK, STREAM, TABLE, VIEW"),
    ("SHOW JOBS", 1, 6, "unexpected 'JOBS'"),
    ("SET x", 1, 6, "expected one of: TO, '='"),
    ("SELECT CASE WHEN a THEN 1 FROM t", 1, 27, "expected one of: ELSE, END, WHEN, an operator"),
    ("SELECT a FROM t WHERE a = 1 ADN b = 2", 1, 29, "did you mean AND?"),
    ("SELECT a FROM t WHERE a BETWEEN 1", 1, 34, "expected one of: AND, an operator"),
    ("SELECT a FROM t EMIT ON CLOSE", 1, 25, "expected WINDOW"),
    ("SELECT a FROM t\n  WHERE b IN ()", 2, 15, "unexpected ')'"),
    ("SELECT 1 SELECT 2", 1, 10, "unexpected 'SELECT'"),
    ("select 1;\nselect 2;\nselect from t", 3, 8, "the select list is empty"),
    ("SELECT a FROM t UNION", 1, 22, "unexpected end of input"),
    ("WITH x AS (SELECT 1), x AS (SELECT 2) SELECT * FROM x", 1, 23, "used twice"),
    ('SELECT "" FROM t', 1, 8, "empty quoted name"),
    ("SELECT 1e999", 1, 8, "out of range"),
    ("EXPLAIN SHOW STREAMS", 1, 9, "unexpected 'SHOW'"),
    ("SELECT a FROM t WHERE a IS 5", 1, 28, "expected one of: NOT, NULL"),
    ("SELECT 1\n\tFROM t t2 t3", 2, 12, "unexpected 't3'"),
    ("SELECT 1; \n  DROP STREAM", 2, 14, "expected one of: a name, IF"),
    ("SELECT x FROM t JOIN u ON", 1, 26, "expected an expression"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), INVALID)
def test_invalid_statement(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    error = info.value
    assert (error.line, error.column) == (line, column), str(error)
    assert message in error.message
    assert isinstance(error, DSLError)


@pytest.mark.parametrize(("text", "line", "column", "message"), INVALID)
def test_error_text_shows_line_and_caret(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    rendered = str(info.value).split("\n")
    assert rendered[0].startswith(f"line {line}, col {column}: ")
    offending = text.split("\n")[line - 1].expandtabs(1)
    assert rendered[1] == "  " + offending
    assert rendered[2] == "  " + " " * (column - 1) + "^"


def test_expected_lists_are_short() -> None:
    with pytest.raises(ParseError) as info:
        parse("SELECT a AS x FORM t")
    listed = info.value.message.split("expected one of: ")[1].split(")")[0]
    assert len(listed.split(", ")) <= 9
    assert "__ANON" not in info.value.message and "LPAR" not in info.value.message


def test_no_internal_terminal_names_in_messages() -> None:
    for text in (
        "SELECT (",
        "SELECT a::",
        "CREATE STREAM s (",
        "SELECT a FROM t WHERE a IN",
        "SELECT CAST(a",
        "SET",
        "SELECT a +",
        "CREATE STREAM s (a INT) WITH (",
    ):
        with pytest.raises(ParseError) as info:
            parse(text)
        assert not re.search(r"__ANON|LPAR|RPAR|COMMA|\$END|DCOLON|QUOTED_NAME", str(info.value))


def test_deep_nesting_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="nested too deeply"):
        parse("SELECT " + "f(" * (MAX_DEPTH + 10) + "1" + ")" * (MAX_DEPTH + 10))
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_expression("- " * 5000 + "1")
    with pytest.raises(ParseError, match="nested too deeply"):
        parse("SELECT " + " + ".join(["1"] * 1000))
    # Redundant parentheses add no depth.
    assert parse_expression("(" * 3000 + "1" + ")" * 3000) == N(1)


def test_huge_number_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="too long"):
        parse("SELECT " + "9" * 5000)


def test_non_str_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse(b"SELECT 1")  # type: ignore[arg-type]


def test_the_shipped_parser_tables_are_current_and_parse_as_a_freshly_built_parser():
    """`grammar.tables` spares a first query the second it takes to build the LALR tables; after a grammar
    edit, `python -m stream_dsl.sql.grammar` rebuilds it."""
    import lark

    from stream_dsl.sql import grammar

    with open(grammar.TABLES_FILE, "rb") as f:
        stored, built_by = f.readline().split()
    if built_by != f"lark-{lark.__version__}".encode():
        pytest.skip(f"grammar.tables were built by {built_by.decode()}: this lark builds the parser at run time")
    assert stored == grammar.fingerprint(), "grammar.tables is stale: run `python -m stream_dsl.sql.grammar`"
    shipped, built = grammar._shipped(), grammar._build()
    assert shipped is not None
    for path in sorted((Path(__file__).parent / "corpus" / "valid").glob("*.sql"))[:40]:
        text = path.read_text()
        assert shipped.parse(text, start="script") == built.parse(text, start="script"), path.name
