"""Every command registered on the app documents itself: a summary, an example that runs the
command itself, and help text on every option and argument (after sqlite-utils' test_docs.py).

The commands come from the app, not from a list here, so a new command is checked the moment
it is registered.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from mlpcli.cli import app

pytestmark = pytest.mark.usefixtures("plain_terminal")

#: name -> Click command, as registered (Typer may vendor its own Click, hence `Any`).
COMMANDS: dict[str, Any] = dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_app_registers_commands() -> None:
    assert "train" in COMMANDS and len(COMMANDS) >= 2


def test_root_help_lists_every_registered_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS), ids=sorted(COMMANDS))
def test_help_has_a_summary_and_an_example(runner: CliRunner, name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    summary = (COMMANDS[name].help or "").strip().splitlines()
    assert summary and summary[0].strip(), f"{name} has no docstring"
    assert "Example:" in result.stdout
    example = result.stdout.split("Example:", 1)[1]
    assert f"mlpcli {name} " in example, f"the example of {name} does not run {name}"


@pytest.mark.parametrize("name", sorted(COMMANDS), ids=sorted(COMMANDS))
def test_every_parameter_has_help_text(name: str) -> None:
    missing = [
        p.name
        for p in COMMANDS[name].params
        if p.param_type_name in ("option", "argument") and not getattr(p, "help", None)
    ]
    assert missing == []


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flags(runner: CliRunner, flag: str) -> None:
    from mlpcli import __version__

    result = runner.invoke(app, [flag])
    assert result.exit_code == 0
    assert result.stdout == f"mlpcli {__version__}\n"


#: Typer's own flags, whose metavar mlpcli does not declare.
TYPER_FLAGS = ("--help", "--install-completion", "--show-completion")


@pytest.mark.parametrize("name", ["", *sorted(COMMANDS)], ids=["mlpcli", *sorted(COMMANDS)])
def test_flags_show_no_value_placeholder(runner: CliRunner, name: str) -> None:
    result = runner.invoke(app, [*([name] if name else []), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    rows = [line for line in result.stdout.splitlines() if not any(f in line for f in TYPER_FLAGS)]
    assert [line for line in rows if "<bool>" in line] == []
    assert [line for line in rows if re.search(r"--no-[a-z-]+\s+TEXT", line)] == []
