"""The shell's startup (issue 24): a startup file, -i, -c and -f, and `\\set` listing every SET key."""

from __future__ import annotations

import io

import pytest

from stream_dsl.bind.binder import SETTINGS
from stream_dsl.cli import main as cli

DDL = "CREATE STREAM nums (n BIGINT) WITH (connector = 'files', path = '{path}');"


def ddl(tmp_path) -> str:
    data = tmp_path / "nums.ndjson"
    data.write_text("".join(f'{{"n": {n}}}\n' for n in range(5)))
    return DDL.format(path=data)


def shell(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["repl", "--executor", "inline", *argv], out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def rc(tmp_path, monkeypatch):
    path = tmp_path / "rc.sql"
    path.write_text(ddl(tmp_path) + "\nSET batch_interval = '1s';\n")
    monkeypatch.setenv("STREAM_DSL_RC", str(path))
    return path


def test_the_startup_file_runs_first_unless_no_rc(rc):
    code, out, err = shell("-c", "SELECT COUNT(*) AS c FROM nums;", "--format", "csv")
    assert code == 0, err
    assert out.splitlines()[-2:] == ["c", "5"]
    code, out, err = shell("--no-rc", "-c", "SELECT COUNT(*) AS c FROM nums;")
    assert code == 1 and "unknown" in err and "nums" in err


def test_c_and_f_run_and_exit_with_the_error_count_as_code(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAM_DSL_RC", str(tmp_path / "none.sql"))
    script = tmp_path / "s.sql"
    script.write_text(ddl(tmp_path) + "\nSELECT SUM(n) AS s FROM nums;\n")
    code, out, err = shell("-f", str(script), "--format", "csv")
    assert code == 0 and out.splitlines()[-2:] == ["s", "10"], (out, err)
    code, _, err = shell("-c", "SELECT nope FROM nowhere;")
    assert code == 1 and "nowhere" in err


def test_i_runs_a_file_and_then_reads_on(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAM_DSL_RC", str(tmp_path / "none.sql"))
    init = tmp_path / "init.sql"
    init.write_text(ddl(tmp_path))
    code, out, err = shell("-i", str(init), "--format", "csv", stdin="SELECT MAX(n) AS m FROM nums;\n")
    assert code == 0 and out.splitlines()[-2:] == ["m", "4"], (out, err)


def test_backslash_set_lists_every_set_key(rc):
    code, out, err = shell("-c", "\\set", "--format", "csv")
    assert code == 0, err
    keys = [line.split(",")[0] for line in out.splitlines()[1:]]
    assert keys[: len(SETTINGS)] == list(SETTINGS)
    assert "batch_interval,1000ms" in out.splitlines()  # the startup file's SET shows
