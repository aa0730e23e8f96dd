"""The statement corpus: golden plans for valid statements, exact errors for invalid ones.

Valid statements (`tests/corpus/valid/NN_topic.sql`, one statement each) are
parsed and bound against the `ctx` fixture's catalog, rendered canonically and
compared with the `.plan` file next to them. Run with `--update-goldens` to
rewrite the goldens, then read the diff: a golden is only right if the plan is.

Invalid statements (`tests/corpus/invalid/*.sql`) start with a header comment

    -- error: BindError 5:7 unknown column 'amuont' (did you mean 'amount'?)

(class, line:column in the file, a substring of the message); line and column
count the header line, since the whole file is what the user typed.

Either kind of file may carry `-- xfail: reason` lines (at the end, so line
numbers do not move): a known bug of the binder, described for whoever fixes
it. The golden of an xfail case holds the correct plan, written by hand, and
`--update-goldens` leaves it alone. The marks are strict: once the bug is
fixed the case reports XPASS and fails until its xfail line is removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.sql import ast
from stream_dsl.bind import binder as B
from stream_dsl.errors import BindError, DSLError, ParseError, PositionedError
from stream_dsl.ir.expr import format_duration_ms, render_literal
from stream_dsl.sql.parser import parse, parse_statement
from stream_dsl.ir.definitions import Watermark
from stream_dsl.ir.plan import render_plan
from stream_dsl.ir.types import DataType

CORPUS = Path(__file__).parent / "corpus"
VALID = sorted((CORPUS / "valid").glob("*.sql"))
INVALID = sorted((CORPUS / "invalid").glob("*.sql"))

_XFAIL = re.compile(r"^--\s*xfail:\s*(.+)$", re.MULTILINE)
_ERROR = re.compile(r"^--\s*error:\s*(\w+)\s+(\d+):(\d+)\s+(.+?)\s*$")


def _xfail_reason(text: str) -> str | None:
    reasons = _XFAIL.findall(text)
    return "; ".join(r.strip() for r in reasons) or None


def _cases(paths: list[Path], *, xfail: bool = True) -> list:
    """One param per file, marked xfail (strict: a fix shows up as XPASS) when the file says so."""
    cases = []
    for path in paths:
        reason = _xfail_reason(path.read_text()) if xfail else None
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        cases.append(pytest.param(path, id=path.stem, marks=marks))
    return cases


# ---------------------------------------------------------------- canonical text of a bound statement


def _options(options: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{k} = {render_literal(v, DataType.STRING)}" for k, v in options)


def _flags(**flags: bool) -> str:
    on = [name.replace("_", " ") for name, value in flags.items() if value]
    return f" [{', '.join(on)}]" if on else ""


def _indented(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def render_statement(bound: object) -> str:
    """One deterministic text per bound statement: the plan for queries, a short record for the rest."""
    if isinstance(bound, B.BoundQuery):
        return render_plan(bound.plan, schema=True)
    if isinstance(bound, B.BoundCreateSource):
        src = bound.source
        lines = [
            f"CreateSource {src.kind} {src.name}" + _flags(or_replace=bound.replace, if_not_exists=bound.if_not_exists),
            f"  schema: ({src.schema})",
        ]
        if src.watermark is not None:
            lines.append(f"  watermark: {src.watermark.column} - {format_duration_ms(src.watermark.delay_ms)}")
        lines.append(f"  options: {_options(src.options)}")
        return "\n".join(lines)
    if isinstance(bound, B.BoundCreateSink):
        head = f"CreateSink {bound.sink.name}" + _flags(or_replace=bound.replace, if_not_exists=bound.if_not_exists)
        return f"{head}\n  options: {_options(bound.sink.options)}"
    if isinstance(bound, B.BoundCreateView):
        head = f"CreateView {bound.name}" + _flags(or_replace=bound.replace)
        return f"{head}\n{_indented(render_plan(bound.plan, schema=True))}"
    if isinstance(bound, B.BoundInsert):
        return f"Insert into {bound.sink.name}\n{_indented(render_plan(bound.plan, schema=True))}"
    if isinstance(bound, B.BoundExplain):
        head = "Explain analyze" if bound.analyze else "Explain"
        return f"{head}\n{_indented(render_statement(bound.statement))}"
    if isinstance(bound, B.BoundShow):
        return f"Show {bound.what.lower()}"
    if isinstance(bound, B.BoundDescribe):
        return f"Describe {bound.name}"
    if isinstance(bound, B.BoundSet):
        return f"Set {bound.key} = {render_literal(bound.value, DataType.STRING)}"
    if isinstance(bound, B.BoundDrop):
        return f"Drop {bound.kind.lower()} {bound.name}" + _flags(if_exists=bound.if_exists)
    raise TypeError(f"no canonical text for {type(bound).__name__}")


def bind_text(ctx: sd.Context, text: str) -> object:
    """Parse and bind one statement against the context's catalog, without applying or running it."""
    try:
        return B.bind(parse_statement(text), ctx.catalog, text)
    except PositionedError as err:
        raise err.with_source(text) from None


# ---------------------------------------------------------------- golden plans


@pytest.mark.parametrize("path", _cases(VALID))
def test_golden(path: Path, ctx: sd.Context, update_goldens: bool) -> None:
    text = path.read_text()
    actual = render_statement(bind_text(ctx, text)) + "\n"
    golden = path.with_suffix(".plan")
    if update_goldens and _xfail_reason(text) is None:
        if not golden.exists() or golden.read_text() != actual:
            golden.write_text(actual)
        return
    if not golden.exists():
        pytest.fail(
            f"missing golden file {golden.relative_to(CORPUS.parent.parent)}; create it with "
            f"`python -m pytest tests/test_corpus.py --update-goldens` and review it"
        )
    assert actual == golden.read_text(), f"plan of {path.name} differs from {golden.name}"


def _statement_kind(path: Path) -> type | None:
    """The AST class of a corpus statement, to pick the tests that apply (None if it does not parse)."""
    try:
        statement = parse_statement(path.read_text())
    except DSLError:
        return None
    if isinstance(statement, ast.Explain) and statement.analyze:
        return None  # EXPLAIN ANALYZE runs the query
    return type(statement)


_QUERIES = [p for p in VALID if _statement_kind(p) is ast.QueryStatement]
_NOT_RUNNING = [p for p in VALID if _statement_kind(p) not in (None, ast.QueryStatement, ast.Insert)]


@pytest.mark.parametrize("path", _cases(_QUERIES, xfail=False))
def test_context_sql_builds_the_bound_plan(path: Path, ctx: sd.Context) -> None:
    """`ctx.sql` (the public path) returns a Stream over the same plan the golden holds."""
    text = path.read_text()
    stream = ctx.sql(text)
    assert isinstance(stream, sd.Stream)
    assert stream.plan == bind_text(ctx, text).plan


@pytest.mark.parametrize("path", _cases(_NOT_RUNNING, xfail=False))
def test_statement_applies_through_context(path: Path, ctx: sd.Context) -> None:
    """DDL, SHOW, DESCRIBE, SET, DROP and EXPLAIN run through `ctx.sql` with the documented results."""
    text = path.read_text()
    bound = bind_text(ctx, text)
    result = ctx.sql(text)
    if isinstance(bound, B.BoundExplain):
        assert isinstance(result, str) and result
    elif isinstance(bound, (B.BoundShow, B.BoundDescribe)):
        assert isinstance(result, pl.DataFrame) and result.height > 0
    else:
        assert result is None
    if isinstance(bound, B.BoundCreateSource) and not bound.if_not_exists:
        assert ctx.catalog.sources[bound.source.name] == bound.source
    elif isinstance(bound, B.BoundCreateSink) and not bound.if_not_exists:
        assert ctx.catalog.sinks[bound.sink.name] == bound.sink
    elif isinstance(bound, B.BoundCreateView):
        assert ctx.sql(f'SELECT * FROM "{bound.name}"').plan == bound.plan
    elif isinstance(bound, B.BoundDrop) and not bound.if_exists:
        assert bound.name not in ctx.catalog.relation_names()
    elif isinstance(bound, B.BoundSet):
        assert str(getattr(ctx.config, bound.key)) == bound.value


def test_fixture_catalog_is_built_by_ddl(ctx: sd.Context) -> None:
    """The `ctx` fixture's DDL gives the corpus catalog: kinds, schemas, watermarks, the sink."""
    sources = ctx.catalog.sources
    assert {name: src.kind for name, src in sources.items()} == {
        "events": "stream",
        "campaigns": "table",
        "clicks": "stream",
        "sensors": "stream",
        "users": "table",
        "transactions": "stream",
    }
    assert sources["events"].watermark == Watermark("event_time", 1000)
    assert sources["clicks"].watermark == Watermark("ts", 5000)
    assert sources["sensors"].watermark is None and sources["transactions"].watermark is None
    assert str(sources["clicks"].schema) == "user_id: STRING, url: STRING, ts: TIMESTAMP, duration_ms: BIGINT"
    assert str(sources["sensors"].schema) == (
        "sensor_id: INT, temperature: DOUBLE, humidity: DOUBLE, ok: BOOLEAN, ts: TIMESTAMP"
    )
    assert sources["events"].option("connector") == "generator"
    assert list(ctx.catalog.sinks) == ["out"]


def test_corpus_is_one_script() -> None:
    """All valid statements, joined by ';', parse as one script, one statement each."""
    texts = [p.read_text().rstrip().rstrip(";") for p in VALID]
    assert len(parse(";\n".join(texts) + ";")) == len(VALID)


def test_corpus_size() -> None:
    assert len(VALID) >= 55
    kinds = [_expectation(p).error for p in INVALID]
    assert len(INVALID) >= 30
    assert kinds.count("ParseError") >= 6 and kinds.count("BindError") >= 15


# ---------------------------------------------------------------- invalid statements


@dataclass(frozen=True)
class Expectation:
    error: str
    line: int
    column: int
    message: str


def _expectation(path: Path) -> Expectation:
    first = path.read_text().splitlines()[0]
    m = _ERROR.match(first)
    if m is None:
        raise AssertionError(f"{path.name}: the first line must be '-- error: <ParseError|BindError> LINE:COL text'")
    return Expectation(m.group(1), int(m.group(2)), int(m.group(3)), m.group(4))


_ERROR_CLASSES = {"ParseError": ParseError, "BindError": BindError}


@pytest.mark.parametrize("path", _cases(INVALID))
def test_invalid(path: Path, ctx: sd.Context) -> None:
    text = path.read_text()
    want = _expectation(path)
    with pytest.raises(DSLError) as info:
        ctx.sql(text)
    err = info.value
    assert type(err) is _ERROR_CLASSES[want.error], f"{type(err).__name__}: {err}"
    assert (err.line, err.column) == (want.line, want.column), str(err)
    assert want.message in err.message, str(err)
    offending = text.splitlines()[want.line - 1].expandtabs(1)
    caret = " " * (want.column - 1) + "^"
    assert f"\n  {offending}\n  {caret}" in str(err), str(err)
    assert str(err).startswith(f"line {want.line}, col {want.column}: ")
