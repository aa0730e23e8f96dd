"""lark parse tree → `stream_dsl.sql.ast` nodes with positions (the tree builder behind `parser`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple

from lark import Token, Tree
from lark.tree import Meta

from stream_dsl.sql import ast
from stream_dsl.errors import ParseError, Span
from stream_dsl.sql import window_tvf as tvf_args


class _Ident(NamedTuple):
    """A name with its position, before it becomes a str field or an Identifier part."""

    text: str
    span: Span
    quoted: bool = False


@dataclass(frozen=True)
class _Clause:
    """A SELECT clause or join condition, tagged so its parent can find it."""

    kind: str
    value: Any


@dataclass(frozen=True)
class _Elements:
    """The parenthesized column list of CREATE STREAM/TABLE."""

    columns: tuple[ast.ColumnDef, ...]
    watermark: ast.WatermarkDef | None


@dataclass(frozen=True)
class _Options:
    items: tuple[tuple[str, str], ...]


class _Option(NamedTuple):
    key: str
    value: str
    span: Span | None


class _Cte(NamedTuple):
    name: str
    query: ast.Query
    span: Span


class _FieldType(NamedTuple):
    """One `name type` of a STRUCT/ROW type, before it becomes the TypeName's field_names and members."""

    name: _Ident
    dtype: ast.TypeName


def _span(meta: Meta) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(token: Token) -> Span:
    assert token.line is not None and token.column is not None  # lexed tokens carry their position
    return Span(token.line, token.column, token.end_line, token.end_column)


def _tokens(children: Iterable[Any]) -> dict[str, Token]:
    """The keyword and operator tokens among `children`, by terminal name."""
    return {c.type: c for c in children if isinstance(c, Token)}


def _first(children: Iterable[Any], cls: type) -> Any:
    return next((c for c in children if isinstance(c, cls)), None)


def _all(children: Iterable[Any], cls: type) -> list[Any]:
    return [c for c in children if isinstance(c, cls)]


def _exprs(children: Iterable[Any]) -> list[Any]:
    """The expression children (anything that is not a token, a name or a placeholder)."""
    return [c for c in children if c is not None and not isinstance(c, (Token, _Ident, str))]


def _unquote(text: str, quote: str) -> str:
    return text[1:-1].replace(quote * 2, quote)


def _unwrap(query: Any) -> Any:
    """A parenthesized query without WITH or LIMIT is just its body."""
    if isinstance(query, ast.Query) and not query.ctes and query.limit is None and not query.order_by:
        return query.body
    return query


class AstBuilder:
    """Turns lark's tree into AST nodes, bottom-up and without recursion.

    Each method is named after a grammar rule (or alias) and receives the
    rule's meta and its already-built children.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def build(self, tree: Tree) -> Any:
        """Post-order walk with an explicit stack, so deep input cannot overflow Python's."""
        results: list[Any] = []
        stack: list[tuple[Any, bool]] = [(tree, False)]
        while stack:
            node, expanded = stack.pop()
            if not isinstance(node, Tree):
                results.append(node)
            elif not expanded:
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(node.children))
            else:
                count = len(node.children)
                children = results[len(results) - count :]
                del results[len(results) - count :]
                handler: Callable[[Meta, list[Any]], Any] = getattr(self, node.data)
                results.append(handler(node.meta, children))
        return results[0]

    def _error(self, message: str, span: Span | None) -> ParseError:
        line, column = (span.line, span.column) if span else (1, 1)
        return ParseError(message, line=line, column=column, source=self.text)

    # ------------------------------------------------------------ scripts and statements

    def script(self, meta: Meta, children: list[Any]) -> list[ast.Statement]:
        return [c for c in children if c is not None]

    def expr_only(self, meta: Meta, children: list[Any]) -> ast.Expr:
        return children[0]

    def create_source(self, meta: Meta, children: list[Any]) -> ast.CreateSource:
        toks = _tokens(children)
        elements = _first(children, _Elements) or _Elements((), None)
        options = _first(children, _Options) or _Options(())
        return ast.CreateSource(
            kind="STREAM" if "STREAM" in toks else "TABLE",
            name=_first(children, _Ident).text,
            columns=elements.columns,
            watermark=elements.watermark,
            options=options.items,
            if_not_exists="EXISTS" in toks,
            or_replace="REPLACE" in toks,
            span=_span(meta),
        )

    def create_sink(self, meta: Meta, children: list[Any]) -> ast.CreateSink:
        toks = _tokens(children)
        return ast.CreateSink(
            name=_first(children, _Ident).text,
            options=_first(children, _Options).items,
            if_not_exists="EXISTS" in toks,
            or_replace="REPLACE" in toks,
            span=_span(meta),
        )

    def create_view(self, meta: Meta, children: list[Any]) -> ast.CreateView:
        return ast.CreateView(
            name=_first(children, _Ident).text,
            query=_first(children, ast.Query),
            or_replace="REPLACE" in _tokens(children),
            span=_span(meta),
        )

    def table_elements(self, meta: Meta, children: list[Any]) -> _Elements:
        watermarks = _all(children, ast.WatermarkDef)
        if len(watermarks) > 1:
            raise self._error("only one WATERMARK clause is allowed", watermarks[1].span)
        return _Elements(tuple(_all(children, ast.ColumnDef)), watermarks[0] if watermarks else None)

    def column_def(self, meta: Meta, children: list[Any]) -> ast.ColumnDef:
        return ast.ColumnDef(
            name=_first(children, _Ident).text,
            type_name=_first(children, ast.TypeName),
            not_null="NULL" in _tokens(children),
            span=_span(meta),
        )

    def watermark_def(self, meta: Meta, children: list[Any]) -> ast.WatermarkDef:
        return ast.WatermarkDef(column=_first(children, _Ident).text, expr=children[-1], span=_span(meta))

    def scalar_type(self, meta: Meta, children: list[Any]) -> ast.TypeName:
        """Upper-case the name; DOUBLE PRECISION is one name; numbers as in DECIMAL(10, 2) kept."""
        word, precision = children[0], children[1]
        name = word.upper()
        if precision is not None:
            if name != "DOUBLE":
                raise self._error(f"PRECISION can only follow DOUBLE, not {word}", _token_span(precision))
            name = "DOUBLE PRECISION"
        numbers = tuple(int(c) for c in children[2:] if isinstance(c, Token) and c.type == "NUMBER" and c.isdigit())
        if len(numbers) != sum(1 for c in children[2:] if isinstance(c, Token) and c.type == "NUMBER"):
            raise self._error(f"the parameters of {name} must be whole numbers", _span(meta))
        return ast.TypeName(name, numbers, span=_span(meta))

    def type_name(self, meta: Meta, children: list[Any]) -> ast.TypeName:
        scalar: ast.TypeName = children[0]
        return scalar

    def list_type(self, meta: Meta, children: list[Any]) -> ast.TypeName:
        return ast.TypeName("ARRAY", members=(_first(children, ast.TypeName),), span=_span(meta))

    def struct_type(self, meta: Meta, children: list[Any]) -> ast.TypeName:
        fields: list[_FieldType] = _all(children, _FieldType)
        seen: set[str] = set()
        for name, _ in fields:
            if name.text.lower() in seen:
                raise self._error(f"duplicate field name '{name.text}'", name.span)
            seen.add(name.text.lower())
        return ast.TypeName(
            "STRUCT",
            members=tuple(t for _, t in fields),
            field_names=tuple(n.text for n, _ in fields),
            span=_span(meta),
        )

    def field_type(self, meta: Meta, children: list[Any]) -> _FieldType:
        return _FieldType(_first(children, _Ident), _first(children, ast.TypeName))

    def map_type(self, meta: Meta, children: list[Any]) -> ast.TypeName:
        return ast.TypeName("MAP", members=tuple(_all(children, ast.TypeName)), span=_span(meta))

    def with_options(self, meta: Meta, children: list[Any]) -> _Options:
        seen: set[str] = set()
        for option in _all(children, _Option):
            if option.key.lower() in seen:
                raise self._error(f"duplicate option '{option.key}'", option.span)
            seen.add(option.key.lower())
        return _Options(tuple((o.key, o.value) for o in _all(children, _Option)))

    def option(self, meta: Meta, children: list[Any]) -> _Option:
        key: Token = children[0]
        text = _unquote(key, "'") if key.type == "STRING" else str(key)
        return _Option(text, children[-1], _span(meta))

    def option_value(self, meta: Meta, children: list[Any]) -> str:
        """Option values are kept as text: '1000', 'true', 'csv'."""
        token = children[-1]
        if token.type == "STRING":
            return _unquote(token, "'")
        if token.type in ("TRUE", "FALSE"):
            return token.lower()
        return "".join(children)

    def drop(self, meta: Meta, children: list[Any]) -> ast.Drop:
        toks = _tokens(children)
        kind = next(k for k in ("STREAM", "TABLE", "SINK", "VIEW") if k in toks)
        return ast.Drop(kind=kind, name=_first(children, _Ident).text, if_exists="EXISTS" in toks, span=_span(meta))

    def insert(self, meta: Meta, children: list[Any]) -> ast.Insert:
        return ast.Insert(sink=_first(children, _Ident).text, query=_first(children, ast.Query), span=_span(meta))

    def query_stmt(self, meta: Meta, children: list[Any]) -> ast.QueryStatement:
        return ast.QueryStatement(query=children[0], span=_span(meta))

    def explain(self, meta: Meta, children: list[Any]) -> ast.Explain:
        return ast.Explain(statement=children[-1], analyze="ANALYZE" in _tokens(children), span=_span(meta))

    def show(self, meta: Meta, children: list[Any]) -> ast.Show:
        return ast.Show(what=children[-1].type, span=_span(meta))

    def describe(self, meta: Meta, children: list[Any]) -> ast.Describe:
        return ast.Describe(name=children[-1].text, span=_span(meta))

    def describe_function(self, meta: Meta, children: list[Any]) -> ast.Describe:
        return ast.Describe(name=children[-1].text, function=True, span=_span(meta))

    def describe_query(self, meta: Meta, children: list[Any]) -> ast.Describe:
        return ast.Describe(name=children[-1].text, query=True, span=_span(meta))

    def stop_query(self, meta: Meta, children: list[Any]) -> ast.StopQuery:
        return ast.StopQuery(name=children[-1].text, span=_span(meta))

    def set_stmt(self, meta: Meta, children: list[Any]) -> ast.SetOption:
        return ast.SetOption(key=str(children[1]), value=children[-1], span=_span(meta))

    # ------------------------------------------------------------ queries

    def query(self, meta: Meta, children: list[Any]) -> ast.Query:
        ctes, body, order, limit = children[0], children[1], children[2], children[4]
        return ast.Query(
            body=_unwrap(body),
            ctes=tuple(ctes or ()),
            limit=None if limit is None else self._limit(limit),
            span=_span(meta),
            order_by=tuple(order or ()),
        )

    def order_clause(self, meta: Meta, children: list[Any]) -> list[ast.OrderItem]:
        return [c for c in children if isinstance(c, ast.OrderItem)]

    def order_item(self, meta: Meta, children: list[Any]) -> ast.OrderItem:
        expr, direction, _, nulls = children
        return ast.OrderItem(
            expr,
            descending=direction is not None and direction.upper() == "DESC",
            nulls_first=nulls is not None and nulls.upper() == "FIRST",
            span=_span(meta),
        )

    def _limit(self, token: Token) -> int:
        if not token.isdigit():
            raise self._error(f"LIMIT needs a whole number, not {token}", _token_span(token))
        return self._integer(token)

    def with_clause(self, meta: Meta, children: list[Any]) -> list[tuple[str, ast.Query]]:
        seen: set[str] = set()
        for cte in _all(children, _Cte):
            if cte.name.lower() in seen:
                raise self._error(f"WITH name '{cte.name}' is used twice", cte.span)
            seen.add(cte.name.lower())
        return [(c.name, c.query) for c in _all(children, _Cte)]

    def cte(self, meta: Meta, children: list[Any]) -> _Cte:
        name = _first(children, _Ident)
        return _Cte(name.text, _first(children, ast.Query), name.span)

    def union(self, meta: Meta, children: list[Any]) -> ast.SetOp:
        left, right = children[0], children[-1]
        return ast.SetOp(left=_unwrap(left), right=_unwrap(right), all="ALL" in _tokens(children), span=_span(meta))

    def select(self, meta: Meta, children: list[Any]) -> ast.Select:
        clauses = {c.kind: c.value for c in children if isinstance(c, _Clause)}
        return ast.Select(
            items=tuple(_first(children, list)),
            from_=clauses.get("from"),
            where=clauses.get("where"),
            group_by=tuple(clauses.get("group", ())),
            having=clauses.get("having"),
            distinct="DISTINCT" in _tokens(children),
            emit=clauses.get("emit"),
            span=_span(meta),
            qualify=clauses.get("qualify"),
        )

    def select_items(self, meta: Meta, children: list[Any]) -> list[ast.SelectItem]:
        return children

    def select_item(self, meta: Meta, children: list[Any]) -> ast.SelectItem:
        alias = children[-1].text if len(children) > 1 else None
        return ast.SelectItem(expr=children[0], alias=alias, span=_span(meta))

    def star_item(self, meta: Meta, children: list[Any]) -> ast.SelectItem:
        qualifier = children[0].text if isinstance(children[0], _Ident) else None
        star = ast.Star(qualifier=qualifier, span=_span(meta))
        return ast.SelectItem(expr=star, span=_span(meta))

    def from_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("from", children[-1])

    def where_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("where", children[-1])

    def group_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("group", _exprs(children))

    def having_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("having", children[-1])

    def qualify_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("qualify", children[-1])

    def emit_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("emit", "CHANGES" if "CHANGES" in _tokens(children) else "WINDOW CLOSE")

    def table_ref(self, meta: Meta, children: list[Any]) -> ast.TableRef:
        names = _all(children, _Ident)
        alias = names[1].text if len(names) > 1 else None
        return ast.TableRef(name=names[0].text, alias=alias, span=_span(meta))

    def subquery_ref(self, meta: Meta, children: list[Any]) -> ast.SubqueryRef:
        alias = _first(children, _Ident)
        return ast.SubqueryRef(query=children[0], alias=alias.text if alias else None, span=_span(meta))

    def window_tvf(self, meta: Meta, children: list[Any]) -> ast.WindowTVF:
        name, alias = children[1], children[-1]
        args = [c for c in children[2:-2] if not isinstance(c, Token)]
        return tvf_args.build_window_tvf(
            name.text, name.span, args, alias.text if alias else None, _span(meta), self._error
        )

    def tvf_named_arg(self, meta: Meta, children: list[Any]) -> tvf_args.NamedArg:
        return tvf_args.NamedArg(children[0].text, children[-1], _span(meta))

    def tvf_table(self, meta: Meta, children: list[Any]) -> tvf_args.TableArg:
        table = ast.TableRef(name=children[1].text, span=children[1].span)
        return tvf_args.TableArg(table, children[-1] or (), _span(meta))

    def tvf_subquery(self, meta: Meta, children: list[Any]) -> tvf_args.TableArg:
        query = children[1]  # after TABLE
        return tvf_args.TableArg(ast.SubqueryRef(query=query, span=_span(meta)), children[-1] or (), _span(meta))

    def tvf_keys(self, meta: Meta, children: list[Any]) -> tuple[ast.Identifier, ...]:
        return tuple(_all(children, ast.Identifier))

    def tvf_descriptor(self, meta: Meta, children: list[Any]) -> tvf_args.DescriptorArg:
        column = ast.Identifier((children[-1].text,), span=children[-1].span)
        return tvf_args.DescriptorArg(column, _span(meta))

    def join(self, meta: Meta, children: list[Any]) -> ast.Join:
        left, cond = children[0], children[-1]
        right = children[-2]
        words = _tokens(children)
        kind = next((k for k in ("LEFT", "RIGHT", "FULL") if k in words), "INNER")
        on = cond.value if cond.kind == "on" else None
        using = cond.value if cond.kind == "using" else None
        # A RIGHT or FULL join is refused at its keyword (`bind.query`), so that is where its span points.
        span = _token_span(words[kind]) if kind in ("RIGHT", "FULL") else _span(meta)
        return ast.Join(left=left, right=right, kind=kind, on=on, using=using, span=span)

    def cross_join(self, meta: Meta, children: list[Any]) -> ast.Join:
        keyword = _tokens(children).get("CROSS")
        span = _token_span(keyword) if keyword is not None else children[-1].span  # `, UNNEST(...)`
        return ast.Join(left=children[0], right=children[-1], kind="CROSS", span=span)

    def unnest_ref(self, meta: Meta, children: list[Any]) -> ast.Unnest:
        names = [n.text for n in _all(children, _Ident)]
        return ast.Unnest(
            expr=_exprs(children)[0],
            alias=names[0] if names else None,
            columns=tuple(names[1:]),
            ordinality="ORDINALITY" in _tokens(children),
            span=_span(meta),
        )

    def on_cond(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("on", children[-1])

    def using_cond(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("using", tuple(c.text for c in _all(children, _Ident)))

    # ------------------------------------------------------------ expressions

    def binop(self, meta: Meta, children: list[Any]) -> ast.BinaryOp:
        left, op, right = children
        text = op.upper()
        return ast.BinaryOp(op="<>" if text == "!=" else text, left=left, right=right, span=_span(meta))

    def unop(self, meta: Meta, children: list[Any]) -> ast.UnaryOp:
        op, operand = children
        return ast.UnaryOp(op=op.upper(), operand=operand, span=_span(meta))

    def is_null(self, meta: Meta, children: list[Any]) -> ast.IsNull:
        return ast.IsNull(expr=children[0], negated=children[2] is not None, span=_span(meta))

    def in_list(self, meta: Meta, children: list[Any]) -> ast.InList:
        return ast.InList(
            expr=children[0], items=tuple(_exprs(children[3:])), negated=children[1] is not None, span=_span(meta)
        )

    def between(self, meta: Meta, children: list[Any]) -> ast.Between:
        expr, negated, _, low, _, high = children
        return ast.Between(expr=expr, low=low, high=high, negated=negated is not None, span=_span(meta))

    def like(self, meta: Meta, children: list[Any]) -> ast.Like:
        expr, negated, _, pattern = children
        return ast.Like(expr=expr, pattern=pattern, negated=negated is not None, span=_span(meta))

    def cast(self, meta: Meta, children: list[Any]) -> ast.Cast:
        return ast.Cast(expr=children[0], type_name=children[-1], span=_span(meta))

    def subscript(self, meta: Meta, children: list[Any]) -> ast.FuncCall:
        """`a[i]` is LIST_ELEMENT(a, i) (stream_dsl/ir/functions_arrays.py)."""
        return ast.FuncCall(name="LIST_ELEMENT", args=tuple(_exprs(children)), span=_span(meta))

    def list_literal(self, meta: Meta, children: list[Any]) -> ast.FuncCall:
        """`[1, 2]` and `ARRAY[1, 2]` are LIST_VALUE(1, 2)."""
        return ast.FuncCall(name="LIST_VALUE", args=tuple(_exprs(children)), span=_span(meta))

    def cast_call(self, meta: Meta, children: list[Any]) -> ast.Cast:
        return ast.Cast(expr=children[1], type_name=children[-1], span=_span(meta))

    def literal(self, meta: Meta, children: list[Any]) -> ast.Expr:
        token: Token = children[0]
        span = _span(meta)
        if token.type == "NUMBER":
            return ast.NumberLit(self._number(token), span=span)
        if token.type == "STRING":
            return ast.StringLit(_unquote(token, "'"), span=span)
        if token.type == "NULL":
            return ast.NullLit(span=span)
        return ast.BoolLit(token.type == "TRUE", span=span)

    def _number(self, token: Token) -> int | float:
        """Digits only → int, anything with '.' or an exponent → float."""
        if token.isdigit():
            return self._integer(token)
        value = float(token)
        if math.isinf(value):
            raise self._error(f"number {token} is out of range", _token_span(token))
        return value

    def _integer(self, token: Token) -> int:
        try:
            return int(token)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise self._error("number is too long", _token_span(token)) from None

    def interval(self, meta: Meta, children: list[Any]) -> ast.IntervalLit:
        value, unit = children[1], children[2]
        text = _unquote(value, "'") if value.type == "STRING" else str(value)
        unit_name = unit.upper().removesuffix("S") if unit is not None else None
        return ast.IntervalLit(value=text, unit=unit_name, span=_span(meta))

    def timestamp_lit(self, meta: Meta, children: list[Any]) -> ast.TimestampLit:
        return ast.TimestampLit(_unquote(children[1], "'"), span=_span(meta))

    def date_lit(self, meta: Meta, children: list[Any]) -> ast.DateLit:
        return ast.DateLit(_unquote(children[1], "'"), span=_span(meta))

    def column(self, meta: Meta, children: list[Any]) -> ast.Identifier | ast.FuncCall:
        if len(children) == 1 and children[0].text.lower() == "current_timestamp" and not children[0].quoted:
            return ast.FuncCall(name="CURRENT_TIMESTAMP", args=(), span=_span(meta))  # SQL's spelling of NOW()
        if len(children) == 1 and children[0].text.lower() == "current_date" and not children[0].quoted:
            return ast.FuncCall(name="CURRENT_DATE", args=(), span=_span(meta))
        return ast.Identifier(tuple(c.text for c in children), span=_span(meta))

    def timestamp_column(self, meta: Meta, children: list[Any]) -> ast.Identifier:
        """`timestamp` or `date` used as a column name (the keyword not followed by a string)."""
        return ast.Identifier((str(children[0]),), span=_span(meta))

    def func_call(self, meta: Meta, children: list[Any]) -> ast.FuncCall:
        name = children[0].text.upper()
        toks = _tokens(children)
        return ast.FuncCall(
            name=name,
            args=tuple(_exprs(children[1:])),
            distinct="DISTINCT" in toks,
            star="STAR" in toks,
            span=_span(meta),
        )

    def struct_literal(self, meta: Meta, children: list[Any]) -> ast.FuncCall:
        """{'a': 1, b: 2} is NAMED_STRUCT('a', 1, 'b', 2), as DuckDB's struct literal."""
        args = tuple(part for entry in children if entry is not None for part in entry)
        return ast.FuncCall(name="NAMED_STRUCT", args=args, span=_span(meta))

    def struct_entry(self, meta: Meta, children: list[Any]) -> tuple[ast.Expr, ast.Expr]:
        key, value = children[0], children[-1]
        name = _unquote(key, "'") if isinstance(key, Token) else key.text
        return ast.StringLit(name, span=_span(meta)), value

    def window_call(self, meta: Meta, children: list[Any]) -> ast.WindowCall:
        func, _, partition, order = children
        return ast.WindowCall(func, tuple(partition or ()), tuple(order or ()), span=_span(meta))

    def partition_clause(self, meta: Meta, children: list[Any]) -> list[ast.Expr]:
        return _exprs(children)

    def extract_call(self, meta: Meta, children: list[Any]) -> ast.FuncCall:
        """`EXTRACT(field FROM ts)` is `DATE_PART('field', ts)`."""
        function, field, operand = children[0], children[1], children[-1]
        if function.text.upper() != "EXTRACT":
            raise self._error(f"'{function.text}(x FROM y)' is not a function call; EXTRACT is", function.span)
        literal = ast.StringLit(field.text.lower(), span=field.span)
        return ast.FuncCall(name="DATE_PART", args=(literal, operand), span=_span(meta))

    def case_expr(self, meta: Meta, children: list[Any]) -> ast.Case:
        operand = children[1]
        whens = tuple(c for c in children if isinstance(c, tuple))
        else_ = children[-2]
        return ast.Case(operand=operand, whens=whens, else_=else_, span=_span(meta))

    def when_clause(self, meta: Meta, children: list[Any]) -> tuple[ast.Expr, ast.Expr]:
        return (children[1], children[3])

    def ident(self, meta: Meta, children: list[Any]) -> _Ident:
        token: Token = children[0]
        if token.type == "NAME":
            return _Ident(str(token), _token_span(token))
        text = _unquote(token, token[0])
        if not text:
            raise self._error("empty quoted name", _token_span(token))
        return _Ident(text, _token_span(token), quoted=True)
