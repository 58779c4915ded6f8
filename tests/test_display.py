"""cli/display.py: the one number formatter and the one reporter family (epochs and tasks)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from mlpcli.cli import display
from mlpcli.crossval import Progress


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (float("nan"), "-"),
        (True, "yes"),
        (False, "no"),
        (0.032720011216120115, "0.03272"),
        (12345.678, "1.235e+04"),
        (3, "3"),
        ([0.5, "a"], "0.5, a"),
        ((), "-"),
        ("text", "text"),
    ],
)
def test_fmt(value: object, text: str) -> None:
    assert display.fmt(value) == text


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = display.SafeConsole(file=buffer, force_terminal=terminal, width=80)
    return console, buffer


def test_plain_reporter_names_the_count_and_the_task() -> None:
    console, buffer = _console(False)
    reporter = display.PlainReporter(console)
    reporter.task("fold", Progress(0, 6, "start", "accuracy"))
    reporter.task("fold", Progress(2, 6, "repeat 1 fold 2", "accuracy", 0.8512345))
    assert buffer.getvalue() == "2/6 folds done; last: repeat 1 fold 2, accuracy 0.8512\n"


def test_jsonl_reporter_writes_one_object_per_task(capsys: pytest.CaptureFixture[str]) -> None:
    console, _ = _console(False)
    display.JsonlReporter(console).task("task", Progress(1, 4, "candidate 1", "r2", 0.5))
    doc = json.loads(capsys.readouterr().err)
    assert doc["event"] == "task" and doc["done"] == 1 and doc["value"] == 0.5


def test_rich_reporter_shows_tasks_on_its_bar() -> None:
    console, buffer = _console(True)
    reporter = display.RichReporter(console)
    reporter.task("fold", Progress(1, 3, "fold 1", "accuracy", 0.75))
    reporter.task("fold", Progress(3, 3, "fold 3", "accuracy", 0.5))
    reporter.close()
    assert "folds" in buffer.getvalue() and "3/3" in buffer.getvalue()


def test_quiet_reporter_shows_no_task() -> None:
    console, buffer = _console(False)
    display.QuietReporter(console).task("fold", Progress(1, 1, "fold 1", "accuracy", 1.0))
    assert buffer.getvalue() == ""


@pytest.mark.parametrize(
    ("quiet", "log_format", "terminal", "kind"),
    [
        (False, "text", True, display.RichReporter),
        (False, "text", False, display.PlainReporter),
        (True, "text", True, display.QuietReporter),
        (False, "jsonl", True, display.JsonlReporter),
    ],
)
def test_make_reporter_picks_one_of_the_family(
    quiet: bool, log_format: str, terminal: bool, kind: type
) -> None:
    console, _ = _console(terminal)
    reporter = display.make_reporter(quiet, log_format, console=console)
    assert type(reporter) is kind
