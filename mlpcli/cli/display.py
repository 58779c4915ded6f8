"""Everything mlpcli shows a person: progress, warnings and tables, all on stderr.

On a terminal training shows a rich live display; elsewhere (pipes, Make, Snakemake logs) plain
one-line records without control characters, or JSON lines with `--log-format jsonl`. Results go
to files or stdout, never mixed with this.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from mlpcli.errors import printable

LOG = logging.getLogger("mlpcli")


class SafeConsole(Console):
    """A rich console that shows text from data as it is: every string it prints (messages,
    table titles and cells, names from tables and model files) passes through `render_str`,
    which escapes control characters, so an ESC sequence in a column name never reaches the
    terminal. Markup is off unless asked for (`styled`), so a column named `[/]` is text."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(printable(text, multiline=True), **kwargs)


def styled(label: str, text: str, console: Console) -> Any:
    """`label` (rich markup) then plain `text`: the label's colour on terminals only."""
    from rich.text import Text

    head = Text.from_markup(label) if console.is_terminal else Text(Text.from_markup(label).plain)
    return Text.assemble(head, " ", printable(text, multiline=True))


def stderr_console(force_terminal: bool | None = None, stderr: bool = True) -> Console:
    """A console for tables and progress; in logs and pipes wide enough that no number is cut."""
    console = SafeConsole(
        stderr=stderr, force_terminal=force_terminal, highlight=False, soft_wrap=True
    )
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200
    return console


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Reporter:
    """Receives training events; the base class shows nothing (`--quiet`)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def message(self, text: str) -> None:
        """An informational line (decisions such as the detected task)."""

    def warning(self, text: str) -> None:
        self.console.print(styled("[yellow]Warning:[/yellow]", text, self.console))

    def start(self, info: dict[str, Any]) -> None:
        pass

    def epoch(self, record: Any) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass

    def table(self, table: Table) -> None:
        pass

    def close(self) -> None:
        pass


class QuietReporter(Reporter):
    """Only warnings and errors."""


class PlainReporter(Reporter):
    """One line per event, every `every` epochs: for logs and pipes."""

    def __init__(self, console: Console, every: int = 10) -> None:
        super().__init__(console)
        self.every = max(1, every)
        self.epochs = 0
        self.metric_name = "metric"

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def message(self, text: str) -> None:
        self._line(text)

    def warning(self, text: str) -> None:
        self._line(f"Warning: {text}")

    def start(self, info: dict[str, Any]) -> None:
        self.epochs = info.get("epochs", 0)
        self.metric_name = info.get("metric_name", "metric")

    def epoch(self, record: Any) -> None:
        if record.epoch % self.every and record.epoch != 1 and record.epoch != self.epochs:
            return
        grad = max(record.grad_norms) if record.grad_norms else None
        self._line(
            f"epoch {record.epoch}/{self.epochs} train_loss={_fmt(record.train_loss)} "
            f"val_loss={_fmt(record.val_loss)} val_{self.metric_name}={_fmt(record.val_metric)} "
            f"best_epoch={record.best_epoch} lr={_fmt(record.lr)} max_grad_norm={_fmt(grad)} "
            f"time={record.seconds:.2f}s"
        )

    def table(self, table: Table) -> None:
        self.console.print(table)


class JsonlReporter(Reporter):
    """One JSON object per line and event on stderr, for log collectors."""

    def _emit(self, event: str, **fields: Any) -> None:
        doc = {"event": event, "time": round(time.time(), 3), **fields}
        sys.stderr.write(json.dumps(doc, default=str) + "\n")
        sys.stderr.flush()

    def message(self, text: str) -> None:
        self._emit("message", message=text)

    def warning(self, text: str) -> None:
        self._emit("warning", message=text)

    def start(self, info: dict[str, Any]) -> None:
        self._emit("start", **info)

    def epoch(self, record: Any) -> None:
        self._emit("epoch", **record.to_dict())

    def finish(self, summary: dict[str, Any]) -> None:
        self._emit("finish", **summary)


class RichReporter(Reporter):
    """A live progress bar with the latest losses, metric, best epoch, lr and gradient norm."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self._progress: Any = None
        self._task: Any = None
        self.metric_name = "metric"

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def start(self, info: dict[str, Any]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.metric_name = info.get("metric_name", "metric")
        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=info.get("epochs"), stats="")

    def epoch(self, record: Any) -> None:
        if self._progress is None:
            return
        grad = max(record.grad_norms) if record.grad_norms else None
        stats = (
            f"loss {_fmt(record.train_loss)} val {_fmt(record.val_loss)} "
            f"{self.metric_name} {_fmt(record.val_metric)} best {record.best_epoch} "
            f"lr {_fmt(record.lr)} |g| {_fmt(grad)}"
        )
        self._progress.update(self._task, completed=record.epoch, stats=stats)

    def finish(self, summary: dict[str, Any]) -> None:
        self.close()

    def table(self, table: Table) -> None:
        self.console.print(table)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def make_reporter(
    quiet: bool = False, log_format: str = "text", every: int = 10, console: Console | None = None
) -> Reporter:
    console = console or stderr_console()
    if log_format == "jsonl":
        return JsonlReporter(console)
    if quiet:
        return QuietReporter(console)
    if console.is_terminal and not console.is_dumb_terminal:
        return RichReporter(console)
    return PlainReporter(console, every)


class ReporterHandler(logging.Handler):
    """Routes the library's log records (warnings, decisions) to the reporter."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.reporter.warning(text)
        else:
            self.reporter.message(text)


def summary_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, _fmt(value))
    return table
