"""`--help` as `cli/helptext.py` draws it (issue 16: help without typer.rich_utils): the same
words as Typer's rich help showed (every panel, option, metavar, help text and default), at
the terminal's width, in colour only on a terminal."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from mlpcli.cli import app
from mlpcli.cli.helptext import plain, render

pytestmark = pytest.mark.usefixtures("plain_terminal")

GROUP: Any = typer.main.get_command(app)
NAMES = ["", *sorted(GROUP.commands)]
BOX = re.compile("[╭─╮│╰╯]")


def _context(name: str) -> Any:
    from mlpcli.cli.common import help_context

    return help_context(GROUP, name or None)


def _words(text: str) -> Counter[str]:
    return Counter(BOX.sub(" ", text).split())


class _Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("name", NAMES, ids=["mlpcli", *NAMES[1:]])
def test_help_shows_every_word_of_typers_rich_help(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Word for word what `typer.rich_utils` printed (wide enough that rich cuts no name)."""
    from typer import rich_utils

    monkeypatch.setenv("COLUMNS", "220")
    ctx = _context(name)
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        rich_utils.rich_format_help(obj=ctx.command, ctx=ctx, markup_mode="rich")
    ours = render(ctx.command, _context(name), stream=io.StringIO())
    assert _words(ours) == _words(shown.getvalue())
    titles = re.findall(r"╭─ (\w[\w -]*?) ─", shown.getvalue())
    assert re.findall(r"╭─ (\w[\w -]*?) ─", ours) == titles  # the panels, in order


@pytest.mark.parametrize("columns", [40, 80, 133])
def test_help_fits_the_terminal_width(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    text = render(GROUP.commands["train"], _context("train"), stream=io.StringIO())
    lines = text.splitlines()
    assert max(len(line) for line in lines) == columns
    assert all(len(line) == columns for line in lines if line[:1] and line[0] in "╭│╰")
    for flag in ("--hidden", "--no-batchnorm", "--ensemble", "--seed", "--out"):
        assert flag in text


def test_help_is_in_colour_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "xterm")
    command, ctx = GROUP.commands["inspect"], _context("inspect")
    coloured = render(command, ctx, stream=_Terminal())
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render(command, ctx, stream=io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in render(command, ctx, stream=_Terminal())


def test_help_draws_ascii_boxes_where_the_stream_cannot_encode_them() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    text = render(GROUP.commands["inspect"], _context("inspect"), stream=stream)
    text.encode("ascii")
    assert "+- Output " in text


@pytest.mark.parametrize(
    ("markup", "shown"),
    [
        ("a \\[default: x] b", "a [default: x] b"),
        ("[bold]strong[/bold] and [dim]faint[/]", "strong and faint"),
        ("groups '^(\\[^_]+)_'", "groups '^([^_]+)_'"),
        ('pip install ".\\[plot]"', 'pip install ".[plot]"'),
        ("two \\\\[bold]x[/bold]", "two \\x"),
    ],
)
def test_rich_markup_is_read_as_rich_reads_it(markup: str, shown: str) -> None:
    from rich.text import Text

    assert plain(markup) == shown == Text.from_markup(markup).plain


# --------------------------------------------------------------------------- kept help
@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["--help"], ""),
        (["-h"], ""),
        (["train", "--help"], "train"),
        (["inspect", "-h"], "inspect"),
        (["train", "--out", "m.npz", "--help"], None),
        (["trian", "--help"], None),
        (["--help", "train"], None),
        ([], None),
    ],
)
def test_only_plain_help_requests_skip_click(argv: list[str], name: str | None) -> None:
    from mlpcli.cli import COMMAND_MODULES, helpcache

    assert helpcache.request(argv, COMMAND_MODULES) == name


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """`mlpcli [NAME] --help` through cli/helpcache.py, keeping its file in tmp_path."""
    from mlpcli import cli
    from mlpcli.cli import helpcache, helptext

    monkeypatch.setattr(sys, "dont_write_bytecode", False)

    def shown(name: str) -> str:
        return helpcache.help_text(name, cli._describe, helptext.draw, folder=tmp_path)

    return shown


@pytest.mark.parametrize("name", ["", "train", "inspect"], ids=["mlpcli", "train", "inspect"])
def test_kept_help_is_what_click_prints(
    name: str, kept: Callable[[str], str], tmp_path: Path, runner: CliRunner
) -> None:
    clicked = runner.invoke(app, [*([name] if name else []), "--help"])
    assert clicked.exit_code == 0
    assert kept(name) == clicked.stdout  # built through Typer, then kept
    assert len(list(tmp_path.glob("mlpcli-help-*.json"))) == 1
    assert kept(name) == clicked.stdout  # read back


def test_a_changed_module_picks_another_help_file(
    kept: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlpcli.cli import helpcache

    kept("inspect")
    first = helpcache.fingerprint()
    real = helpcache._sources
    monkeypatch.setattr(helpcache, "_sources", lambda: [*real(), "mlpcli/config.py:1:2"])
    assert helpcache.fingerprint() != first
    kept("inspect")
    assert len(list(tmp_path.glob("mlpcli-help-*.json"))) == 2
    for i in range(helpcache.KEEP + 2):  # KEEP fingerprints at most, the newest
        monkeypatch.setattr(helpcache, "_sources", lambda i=i: [*real(), f"x.py:{i}:0"])
        kept("inspect")
    names = {p.name for p in tmp_path.glob("mlpcli-help-*.json")}
    assert len(names) == helpcache.KEEP
    assert f"mlpcli-help-{helpcache.fingerprint()}.json" in names


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"inspect": {"usage": 3}}', b'{"inspect": null}', b"x" * 100],
    ids=["not-json", "a-list", "wrong-types", "null", "garbage"],
)
def test_a_damaged_help_file_is_rebuilt_not_trusted(
    content: bytes, kept: Callable[[str], str], tmp_path: Path, runner: CliRunner
) -> None:
    from mlpcli.cli import helpcache

    path = tmp_path / f"mlpcli-help-{helpcache.fingerprint()}.json"
    path.write_bytes(content)
    assert kept("inspect") == runner.invoke(app, ["inspect", "--help"]).stdout
    assert "inspect" in json.loads(path.read_text(encoding="utf-8"))


def test_no_help_file_where_python_writes_no_bytecode(
    kept: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert "--rows" in kept("inspect")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (RuntimeError("boom"), 1, "Error: internal error: RuntimeError: boom. Rerun with --debug"),
        (KeyboardInterrupt(), 130, "Error: interrupted."),
    ],
    ids=["bug", "interrupt"],
)
def test_a_failing_help_is_one_error_line_not_a_traceback(
    error: BaseException,
    code: int,
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlpcli import cli
    from mlpcli.cli import helpcache

    def fail(*args: Any) -> str:
        raise error

    monkeypatch.setattr(helpcache, "help_text", fail)
    assert cli._help("train") == code
    stderr = capsys.readouterr().err
    assert stderr.startswith(line) and stderr.count("\n") == 1
    assert "Traceback" not in stderr


def test_a_help_click_draws_fails_with_one_line_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mlpcli train --out m.npz --help` goes through Click; a bug drawing it is still one line."""
    from mlpcli import cli
    from mlpcli.cli import helptext

    def fail(*args: Any) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(helptext, "draw", fail)
    monkeypatch.setattr(sys, "argv", ["mlpcli", "train", "--out", "m.npz", "--help"])
    assert cli._run() == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith("Error: internal error: RuntimeError: boom.")
    assert stderr.count("\n") == 1
