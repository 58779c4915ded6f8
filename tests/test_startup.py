"""Start-up (issue 16): what `mlpcli --help`, `train --help` and `inspect MODEL` import, in fresh
processes run as `mlpcli` runs. Timings live in bench/startup.py; this checks the imports that
make them slow: no numpy or pandas for help, no pandas for inspect, and no pydantic (which Typer
uses to check values) for any of the three."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("numpy", "pandas", "pydantic", "rich")

#: Fresh Python processes, one per command line: deselected by `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


def _imported(*argv: str) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['mlpcli', *{list(argv)!r}]\n"
        "from mlpcli.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"COLUMNS": "80"}
    )
    assert done.returncode == 0, done.stderr
    return set(done.stderr.split())


def _typer_checks_with_pydantic() -> bool:
    try:
        import typer._coercion  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["cv", "--help"]])
def test_help_imports_neither_numpy_nor_pandas_nor_pydantic_nor_rich(argv: list[str]) -> None:
    imported = _imported(*argv)
    assert imported & {"numpy", "pandas", "rich"} == set()  # rich: cli/helptext.py draws it
    if _typer_checks_with_pydantic():
        assert "pydantic" not in imported


def test_inspect_imports_neither_pandas_nor_pydantic(tiny_model: Path) -> None:
    imported = _imported("inspect", str(tiny_model))
    assert "pandas" not in imported
    if _typer_checks_with_pydantic():
        assert "pydantic" not in imported


def test_values_typed_on_the_command_line_are_still_checked(tiny_model: Path) -> None:
    """The deferred coercion (cli/common.py) passes through only values of the right type."""
    code = (
        "import sys\n"
        f"sys.argv = ['mlpcli', 'inspect', {str(tiny_model)!r}, '--rows', '-1']\n"
        "from mlpcli.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Invalid value for '--rows'" in done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]], ids=["mlpcli", "train"])
def test_help_a_second_time_imports_no_typer(argv: list[str]) -> None:
    """The first `--help` keeps its document next to the bytecode (cli/helpcache.py); the next
    one draws it without importing Typer or Click."""
    code = (
        "import sys\n"
        f"sys.argv = ['mlpcli', *{argv!r}]\n"
        "from mlpcli.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "print(' '.join(m for m in ('typer', 'click') if m in sys.modules), file=sys.stderr)"
    )
    env = {"COLUMNS": "80", "PATH": os.environ.get("PATH", "")}  # bytecode (and help) kept
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert runs[1].stderr.split() == []
