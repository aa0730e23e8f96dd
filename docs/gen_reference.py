"""The reference page, generated from the code's registries when the documentation is built.

mkdocs loads this file as a hook (`hooks:` in mkdocs.yml); `on_files` adds
`reference.md`, rendered from what the code itself declares, so the page
cannot drift from the code: the SQL statements (the grammar), the types,
every function (the function registry, which SHOW FUNCTIONS lists too),
every connector's options (the connector registry and each module's
declared option names), every SET key (the binder's SETTINGS, with the
Context's parameter docs and the RunConfig defaults), the optimizer rules
and the command line (its argparse parser). tests/test_docs.py checks that
every name appears.

`load_registries` is the one place that knows where the registries live
(public names only); the sections are rendered in `reference_sections.py`.
Run it alone to print the page: `python docs/gen_reference.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# docs/ is on sys.path while this file loads: mkdocs puts a hook's folder there, and Python a script's.
from reference_sections import (
    Registries,
    render_cli,
    render_connectors,
    render_functions,
    render_grammar,
    render_rules,
    render_settings,
    render_statements,
    render_types,
)

ROOT = Path(__file__).resolve().parent.parent
PAGE = "reference.md"

# ------------------------------------------------------------------ the registries


def _relative(path: str | Path) -> str:
    return Path(path).resolve().relative_to(ROOT).as_posix()


def load_registries() -> Registries:
    """Import the registries of the checkout this file belongs to (not another installed copy)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import stream_dsl
    from executor.multiproc.transports import known_transports
    from optimizer.rules import RULES
    from stream_dsl import connectors
    from stream_dsl.cli import main as cli
    from stream_dsl.ir import functions
    from stream_dsl.sql import parser
    from stream_dsl.bind.binder import SETTINGS
    from stream_dsl.config import EXECUTORS, RunConfig
    from stream_dsl.connectors import CONNECTORS
    from stream_dsl.connectors.options import COMMON_OPTIONS
    from stream_dsl.context import Context
    from stream_dsl.ir.functions import (
        AGGREGATE_ALIASES,
        AGGREGATE_FUNCTIONS,
        FUNCTION_ALIASES,
        SCALAR_FUNCTIONS,
        WINDOW_FUNCTIONS,
    )
    from stream_dsl.ir.types import TYPE_NAMES, DataType, common_type

    grammar_file = Path(parser.__file__).with_name("grammar.lark")
    files = {
        "grammar": _relative(grammar_file),
        "functions": _relative(functions.__file__),
        "connectors": _relative(connectors.__file__),
    }
    return Registries(
        grammar=grammar_file.read_text(encoding="utf-8"),
        scalar_functions=dict(SCALAR_FUNCTIONS),
        function_aliases=dict(FUNCTION_ALIASES),
        aggregate_functions=dict(AGGREGATE_FUNCTIONS),
        aggregate_aliases=dict(AGGREGATE_ALIASES),
        window_functions=tuple(WINDOW_FUNCTIONS),
        api=stream_dsl,
        data_type=DataType,
        type_names=dict(TYPE_NAMES),
        common_type=common_type,
        connectors=dict(CONNECTORS),
        common_options=frozenset(COMMON_OPTIONS),
        settings=tuple(SETTINGS),
        run_config=RunConfig,
        context=Context,
        executors=tuple(EXECUTORS),
        transports=known_transports(),
        cli_parser=cli.build_parser(),
        rules=tuple(RULES),
        files=files,
    )


# ------------------------------------------------------------------ the page


def render_reference(reg: Registries | None = None) -> str:
    reg = reg or load_registries()
    parts = [
        "# Reference\n",
        (
            "Generated from the code when the documentation is built (`docs/gen_reference.py`): "
            "the grammar, the function registry, the connector registry, the SET keys and the command line. "
            "An empty description means the registry has none yet.\n"
        ),
        render_statements(reg),
        render_types(reg),
        render_functions(reg),
        render_connectors(reg),
        render_settings(reg),
        render_rules(reg),
        render_cli(reg),
        render_grammar(reg),
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------ the mkdocs hook


def on_files(files: Any, config: Any) -> Any:
    """Add the generated page to the site (mkdocs >= 1.6)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render_reference()))
    return files


if __name__ == "__main__":
    sys.stdout.write(render_reference())
