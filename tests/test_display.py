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


def _records(n: int, best: int) -> list[object]:
    from types import SimpleNamespace

    return [
        SimpleNamespace(
            epoch=e,
            train_loss=0.123456,
            val_loss=0.2345678,
            val_metric=0.86666,
            best_epoch=min(e, best),
            lr=0.001,
            grad_norms=[0.35, 1.2345],
        )
        for e in range(1, n + 1)
    ]


def _shown(buffer: io.StringIO) -> list[str]:
    """The lines left on the terminal at the end (after the live display's last redraw)."""
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    return [line.rsplit("\r", 1)[-1] for line in text.splitlines()]


def test_progress_at_80_columns_keeps_counter_eta_and_patience() -> None:
    console, buffer = _console(True)
    reporter = display.RichReporter(console)
    reporter.start({"epochs": 200, "patience": 20, "metric_name": "balanced_accuracy"})
    for record in _records(37, best=34):
        reporter.epoch(record)
    reporter.close()
    lines = _shown(buffer)
    assert all(len(line) <= 80 for line in lines)
    bar = [line for line in lines if line.startswith("training")][-1]
    assert "37/200" in bar and "eta" in bar and "patience 3/20" in bar
    assert any("balanced_accuracy 0.8667" in line for line in lines)


def test_eta_spans_early_stopping_and_the_full_run() -> None:
    record = _records(37, best=34)[-1]
    # 1 s an epoch: patience runs out in 17 epochs, all epochs in 163.
    assert display.epoch_head(record, 200, 20, 37.0) == "37/200 0:37 eta 0:17-2:43 patience 3/20"
    assert display.epoch_head(record, 200, None, 37.0) == "37/200 0:37 eta 2:43"
    assert display.epoch_head(record, 40, 20, 37.0).endswith("eta 0:03 patience 3/20")


def test_the_finished_bar_says_where_training_stopped() -> None:
    from types import SimpleNamespace

    console, buffer = _console(True)
    reporter = display.RichReporter(console)
    reporter.start({"epochs": 200, "patience": 20})
    for record in _records(37, best=17):
        reporter.epoch(record)
    reporter.stopped(SimpleNamespace(stop_reason="patience", epochs_run=37, best_epoch=17))
    reporter.close()
    bar = [line for line in _shown(buffer) if line.startswith("training")][-1]
    assert "stopped at epoch 37/200 (early stopping), best 17" in bar
