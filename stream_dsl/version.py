"""The package's version, from one source: the installed distribution's metadata.

pyproject.toml declares the version; an installed stream-dsl (editable or
not) reports it through `importlib.metadata`. A source checkout that was
never installed reads it from the pyproject.toml next to the package.
Imports nothing heavy, so `stream-dsl --version` stays fast.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "stream-dsl"

_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def installed_version() -> str:
    """The version of the installed distribution, else the one pyproject.toml declares, else '0+unknown'."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return declared_version(_PYPROJECT) or "0+unknown"


def declared_version(pyproject: Path) -> str | None:
    """`version = "..."` of the [project] table (a regex: tomllib is not in Python 3.10)."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    found = project and re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.MULTILINE)
    return found.group(1) if found else None


__version__ = installed_version()
