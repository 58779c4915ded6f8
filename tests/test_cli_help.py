"""`--help` as `cli/helptext.py` draws it (issue 16: help without typer.rich_utils): the same
words as Typer's rich help showed (every panel, option, metavar, help text and default), at
the terminal's width, in colour only on a terminal."""

from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from typing import Any

import pytest
import typer.main

from mlpcli.cli import app
from mlpcli.cli.helptext import plain, render

pytestmark = pytest.mark.usefixtures("plain_terminal")

GROUP: Any = typer.main.get_command(app)
NAMES = ["", *sorted(GROUP.commands)]
BOX = re.compile("[╭─╮│╰╯]")


def _context(name: str) -> Any:
    root = GROUP.context_class(GROUP, info_name="mlpcli")
    if not name:
        return root
    command = GROUP.commands[name]
    return command.context_class(command, info_name=name, parent=root)


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
