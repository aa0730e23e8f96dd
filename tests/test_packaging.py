"""Packaging: one version source, py.typed markers, the license text the metadata names."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import stream_dsl
from stream_dsl.cli import main as cli
from stream_dsl.version import declared_version

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_the_one_pyproject_declares():
    assert stream_dsl.__version__ == declared_version(ROOT / "pyproject.toml")


def test_cli_version_prints_the_package_version():
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert out.getvalue().strip() == f"stream-dsl {stream_dsl.__version__}"


def test_declared_version_reads_only_the_project_table(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.other]\nversion = "9.9"\n\n[project]\nname = "x"\nversion = "1.2.3"\n\n[tool.after]\nversion = "7"\n'
    )
    assert declared_version(pyproject) == "1.2.3"
    pyproject.write_text('[project]\nname = "x"\n')
    assert declared_version(pyproject) is None
    assert declared_version(tmp_path / "missing.toml") is None


@pytest.mark.parametrize("package", ["stream_dsl", "optimizer", "executor"])
def test_packages_are_marked_typed_and_ship_the_marker(package):
    tomllib = pytest.importorskip("tomllib")
    assert (ROOT / package / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data.get(package, []) + package_data.get("*", [])


def test_license_file_is_the_apache_license_the_metadata_names():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
