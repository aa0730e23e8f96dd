"""The layer contract, checked on the source: IR ← front ends ← optimizer ← executor; context, REPL, CLI on top.

Module-level imports only (what runs when a module loads; imports inside
functions and under `if TYPE_CHECKING:` are deliberate late binding). The
scheduler's state machine is also imported in a fresh interpreter, to see
what it really loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stream_dsl", "optimizer", "executor")

# (importer prefix, forbidden prefixes): who may not import whom at load
LAYERS = [
    (
        "stream_dsl.ir",
        (
            "stream_dsl.sql",
            "stream_dsl.bind",
            "stream_dsl.frame",
            "stream_dsl.repl",
            "stream_dsl.cli",
            "stream_dsl.bench",
            "stream_dsl.context",
            "optimizer",
            "executor",
        ),
    ),
    (
        "stream_dsl.sql",
        (
            "stream_dsl.bind",
            "stream_dsl.frame",
            "stream_dsl.repl",
            "stream_dsl.cli",
            "stream_dsl.context",
            "optimizer",
            "executor",
        ),
    ),
    (
        "stream_dsl.bind",
        ("stream_dsl.frame", "stream_dsl.repl", "stream_dsl.cli", "stream_dsl.context", "optimizer", "executor"),
    ),
    ("stream_dsl.frame", ("stream_dsl.repl", "stream_dsl.cli", "optimizer", "executor")),
    ("optimizer", ("executor", "stream_dsl.context", "stream_dsl.repl", "stream_dsl.cli", "stream_dsl.frame")),
    ("executor", ("stream_dsl.context", "stream_dsl.repl", "stream_dsl.cli", "stream_dsl.frame")),
]


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = project_modules()


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(test, (ast.Name, ast.Attribute)) and "TYPE_CHECKING" in ast.unparse(test)


def load_time_imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module loads."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending = list(ast.parse(path.read_text()).body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.If, ast.Try)) and not _is_type_checking(node):
            pending += node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", [])
            for handler in getattr(node, "handlers", []):
                pending += handler.body
    return found


def _owner(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES]


def import_graph() -> tuple[nx.DiGraph, list[tuple[str, str, str]]]:
    """Module -> module edges at load time, and (importer, module, name) for every private name imported."""
    graph = nx.DiGraph()
    private = []
    for module, path in MODULES.items():
        graph.add_node(module)
        for node in load_time_imports(path):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [t for a in node.names if (t := _owner(a.name))]
            elif node.module and node.level == 0 and (owner := _owner(node.module)):
                targets = [owner]
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if sub in MODULES:
                        targets.append(sub)
                    elif alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append((module, node.module, alias.name))
            for target in targets:
                for loaded in _with_parents(target):
                    own_package = module.startswith(loaded + ".")  # loaded before the module anyway
                    if loaded != module and (loaded == target or not own_package):
                        graph.add_edge(module, loaded)
    return graph, private


GRAPH, PRIVATE = import_graph()


@pytest.mark.parametrize("importer, forbidden", LAYERS, ids=[layer for layer, _ in LAYERS])
def test_each_layer_imports_only_the_layers_below_it(importer, forbidden):
    wrong = sorted(
        (a, b)
        for a, b in GRAPH.edges
        if (a == importer or a.startswith(importer + ".")) and any(b == f or b.startswith(f + ".") for f in forbidden)
    )
    assert not wrong, f"{importer} imports what sits above it: {wrong}"


def test_no_import_cycle_at_module_load():
    cycles = sorted(nx.simple_cycles(GRAPH), key=len)
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_no_module_imports_another_modules_private_names():
    assert not PRIVATE, f"private names imported: {PRIVATE}"


def test_every_folder_says_what_it_owns():
    for init in [p for p in MODULES.values() if p.name == "__init__.py"]:
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)} has no docstring"


def test_the_scheduler_state_machine_loads_neither_polars_nor_lark():
    code = (
        "import sys, executor.multiproc.scheduler, executor.multiproc.policies; "
        "print(sorted(m for m in ('polars', 'lark', 'networkx') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def test_the_command_line_help_loads_neither_polars_nor_lark():
    """`stream-dsl --help` must start fast: building the parser and printing help loads no engine."""
    code = (
        "import sys, io, contextlib; from stream_dsl.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
        "print(sorted(m for m in ('polars', 'lark', 'duckdb') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
