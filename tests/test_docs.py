"""The documentation: the generated reference names everything the registries hold, and the site builds.

The reference page (docs/gen_reference.py, run by mkdocs as a hook) is
generated from the grammar, the function, connector and SET registries and
the CLI parser. These tests run the generator without mkdocs and check that
every registered name is on the page, section by section, and that the
registries it reads are the ones the engine uses (SHOW FUNCTIONS). The
slow test builds the whole site with `mkdocs build --strict`, which fails on
a broken link or anchor; it is skipped when mkdocs is missing, except in CI.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import stream_dsl as sd

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "docs" / "gen_reference.py"


def _load_generator():
    """The generator module, loaded from its file as mkdocs loads it, and its sections module."""
    if str(GENERATOR.parent) not in sys.path:
        sys.path.insert(0, str(GENERATOR.parent))  # as mkdocs does for a hook's folder
    spec = importlib.util.spec_from_file_location("gen_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module, importlib.import_module("reference_sections")


gen, sections = _load_generator()


@pytest.fixture(scope="module")
def reg():
    return gen.load_registries()


@pytest.fixture(scope="module")
def page(reg):
    return gen.render_reference(reg)


def section(page: str, title: str) -> str:
    """The text of the `## title` section, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, re.MULTILINE | re.DOTALL)
    assert match, f"no section '{title}'"
    return match.group(1)


def subsection(text: str, title: str) -> str:
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^### |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no subsection '{title}'"
    return match.group(1)


def test_the_registries_are_the_ones_show_functions_lists(reg):
    shown = sd.Context().sql("SHOW FUNCTIONS")
    listed = dict(zip(shown["name"].to_list(), shown["kind"].to_list(), strict=True))
    expected = (
        {n: "scalar" for n in reg.scalar_functions}
        | {n: "aggregate" for n in reg.aggregate_functions}
        | {n: "window" for n in reg.window_functions}
    )
    expected |= {alias: expected[target] for alias, target in reg.function_aliases.items()}
    expected |= {alias: expected[target] for alias, target in reg.aggregate_aliases.items()}
    expected["unnest"] = "table"  # a row per list element: in FROM or as a whole select item (bind/unnest.py)
    assert listed == expected


def test_every_statement_of_the_grammar_is_listed(reg, page):
    statements = sections.statement_rules(reg.grammar)
    assert "create_source" in statements and "set_stmt" in statements
    text = section(page, "SQL statements")
    for name in statements:
        assert f"### `{name}`" in text
        assert sections.grammar_rules(reg.grammar)[name] in text


def test_every_function_is_listed_with_its_signature_and_description(reg, page):
    text = section(page, "Functions")
    scalars = subsection(text, "Scalar functions")
    for name, fn in reg.scalar_functions.items():
        row = next((line for line in scalars.splitlines() if line.startswith(f"| `{name}(")), None)
        assert row is not None, f"scalar function {name} is missing"
        assert sections.signature(fn) in row and sections.table_cell(fn.doc) in row
    for alias, target in reg.function_aliases.items():
        assert re.search(rf"^\| `{target}\(.*`{alias}`", scalars, re.MULTILINE), alias
    aggregates = subsection(text, "Aggregate functions")
    for name in reg.aggregate_functions:
        assert f"| `{name}(" in aggregates
    for alias, target in reg.aggregate_aliases.items():
        assert re.search(rf"^\| `{target}\(.*`{alias}`", aggregates, re.MULTILINE), alias
    windows = subsection(text, "Window functions")
    for name in reg.window_functions:
        assert f"| `{name.upper()}(" in windows


def test_every_connector_and_each_declared_option_is_listed(reg, page):
    text = section(page, "Connectors")
    for option in reg.common_options:
        assert f"`{option}`" in text.split("###", 1)[0]
    for name, module in reg.connectors.items():
        info = sections.connector_info(name, module)
        assert not info.error, info.error
        assert info.roles, f"connector {name} makes no source, table or sink"
        part = subsection(text, f"`{name}`")
        for option in info.options:
            assert f"| `{option}` |" in part, f"{name}: option {option} is missing"


def test_connector_options_come_from_the_modules_declarations(reg):
    files = sections.connector_info("files", reg.connectors["files"])
    assert files.options["watch"] == ("stream", "table")
    assert files.options["path"] == ("stream", "table", "sink")
    redis = sections.connector_info("redis", reg.connectors["redis"])
    assert redis.options["maxlen"] == ("sink",) and redis.options["group"] == ("stream",)


def test_every_set_key_is_listed_with_its_default(reg, page):
    text = section(page, "SET keys")
    for key in reg.settings:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{key}` |")), None)
        assert row is not None, f"SET {key} is missing"
    assert "`'drizzle'`" in text and "`30.0`" in text


def test_every_optimizer_rule_is_listed_in_order(reg, page):
    text = section(page, "Optimizer rules")
    names = [rule.__name__ for rule in reg.rules]
    assert "fold_constants" in names
    rows = re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE)
    assert rows == names


def test_every_cli_command_is_listed(reg, page):
    text = section(page, "Command line")
    commands = [name for name, _ in sections.cli_commands(reg.cli_parser)]
    assert {"run", "explain", "repl", "checkpoints", "bench ysb"} <= set(commands)
    for name in commands:
        assert f"### `stream-dsl {name}`" in text


def test_every_type_name_is_listed(reg, page):
    text = section(page, "Types")
    for name in reg.type_names:
        assert f"`{name}`" in text


def test_the_page_is_the_same_every_time(reg):
    assert gen.render_reference(reg) == gen.render_reference(gen.load_registries())


def test_grammar_rules_reads_rules_and_their_alternatives():
    grammar = '// a comment\n?statement: a\n          | b  // why\n\na: "A" [x]\nb: B\n  | C\n%import common.WS\n'
    assert sections.statement_rules(grammar) == ["a", "b"]
    assert sections.grammar_rules(grammar)["b"] == "b: B\n  | C"


def test_markdown_text_escapes_angle_brackets_outside_code_only():
    assert sections.markdown_text("'<stream>:<id>' and `<kept>`") == "'&lt;stream&gt;:&lt;id&gt;' and `<kept>`"
    assert sections.markdown_text("Options:\n- `a`\n- `b`") == "Options:\n\n- `a`\n- `b`"


# Hand-written pages name files of the repository; after a move they must follow.
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "CONTRIBUTING.md"]
TOP_LEVEL = ("stream_dsl/", "optimizer/", "executor/", "tests/", "docs/", "examples/", ".ci/")


def repository_paths(text: str) -> set[str]:
    """Paths in code spans that start at a top-level folder, placeholders (`<name>`, `*`) left out."""
    spans = re.findall(r"`([^`\s]+)`", text)
    return {s for s in spans if s.startswith(TOP_LEVEL) and not re.search(r"[<*{]", s)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_repository_path_a_page_names_exists(page):
    paths = repository_paths(page.read_text())
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def test_repository_paths_are_found_and_placeholders_skipped():
    text = "see `executor/query/`, `optimizer/rules/<name>.py`, `out/` and `tests/rules/*/x.txt`"
    assert repository_paths(text) == {"executor/query/"}


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path):
    for package in ("mkdocs", "material"):
        if importlib.util.find_spec(package) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{package} is missing in CI: pip install -e '.[docs]'")
            pytest.skip(f"{package} is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (site / "reference" / "index.html").read_text()
    assert "SET keys" in reference and "substring" in reference
    assert "Add a connector" in (site / "contributing" / "index.html").read_text()


def test_the_readme_language_section_names_every_type_and_function(reg):
    """Issue #23's bar: a reader of the README's language section sees every type name and function the
    engine registers (SHOW FUNCTIONS and docs/functions.md give their signatures)."""
    readme = (ROOT / "README.md").read_text()
    language = readme[readme.index("## The language") : readme.index("### Checked at CREATE")]
    named = set(re.findall(r"`([^`]+)`", language))
    missing = [n for n in [*reg.scalar_functions, *reg.aggregate_functions] if n not in named]
    missing += [n for n in reg.type_names if n not in named]
    assert not missing, f"README's language section does not name: {missing}"
