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


def fmt(value: Any) -> str:
    """The one number formatter of everything shown: four significant digits, `-` for a
    missing or undefined value, yes/no for flags, lists comma-joined."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "-" if value != value else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) if value else "-"
    return str(value)


def task_line(noun: str, event: Any) -> str:
    """`3/6 folds done; last: repeat 1 fold 2, accuracy 0.85`: the count, then the task."""
    score = "" if event.value is None else f", {event.metric} {fmt(event.value)}"
    return f"{event.done}/{event.total} {noun}s done; last: {event.what}{score}"


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

    def task(self, noun: str, event: Any) -> None:
        """One finished task of cv or tune (`event`: a `crossval.Progress`)."""

    def stopped(self, result: Any) -> None:
        """Training ended (`result`: the fit's result, with its stop reason)."""

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
            f"epoch {record.epoch}/{self.epochs} train_loss={fmt(record.train_loss)} "
            f"val_loss={fmt(record.val_loss)} val_{self.metric_name}={fmt(record.val_metric)} "
            f"best_epoch={record.best_epoch} lr={fmt(record.lr)} max_grad_norm={fmt(grad)} "
            f"time={record.seconds:.2f}s"
        )

    def task(self, noun: str, event: Any) -> None:
        """About twenty lines over the run."""
        step = max(1, event.total // 20)
        if event.done == 0 or (event.done % step and event.done != event.total):
            return
        self._line(task_line(noun, event))

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

    def task(self, noun: str, event: Any) -> None:
        self._emit(noun, **vars(event))

    def finish(self, summary: dict[str, Any]) -> None:
        self._emit("finish", **summary)


def duration(seconds: float) -> str:
    """`0:07`, `12:30`, `1:02:03`: short enough for an 80-column progress line."""
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


#: Why training stopped, as the finished bar says it.
STOPPED = {
    "patience": "early stopping",
    "epoch_limit": "all epochs run",
    "interrupted": "interrupted",
    "diverged": "diverged",
}


def epoch_head(record: Any, total: int, patience: int | None, elapsed: float) -> str:
    """`37/200 0:12 eta 0:03-0:51 patience 3/20`: the part of the line that is never cut.

    With early stopping the run ends between two times: when the patience runs out if the
    monitored value stops improving now (the first), or after every epoch (the second)."""
    per_epoch = elapsed / max(1, record.epoch)
    remaining = max(0, total - record.epoch)
    head = f"{record.epoch}/{total} {duration(elapsed)} eta "
    if patience is None:
        return head + duration(remaining * per_epoch)
    wait = record.epoch - record.best_epoch
    soonest = min(remaining, max(0, patience - wait))
    if soonest < remaining:
        head += f"{duration(soonest * per_epoch)}-"
    return head + f"{duration(remaining * per_epoch)} patience {wait}/{patience}"


#: Columns the live display leaves free at the right: the terminal echoes Ctrl-C as "^C" after
#: the last line drawn, and on a full line that wraps, so the next redraw (which moves up one
#: line per line drawn) would leave the bar line above it on the screen twice.
ECHO_ROOM = len("^C")


def _two_line_progress(*columns: Any, **kwargs: Any) -> Any:
    """A rich Progress drawing its bar line, then each task's stats on a line of their own,
    cut with an ellipsis ECHO_ROOM short of the terminal's width: the bar line stays short."""
    from rich.constrain import Constrain
    from rich.progress import Progress
    from rich.text import Text

    class TwoLines(Progress):
        def get_renderables(self) -> Any:
            live = getattr(self, "live", None)  # Progress draws once before it is set
            width = max(1, live.console.width - ECHO_ROOM) if live is not None else None
            yield Constrain(self.make_tasks_table(self.tasks), width)
            for task in self.tasks:
                stats = task.fields.get("stats")
                if stats:
                    yield Constrain(Text(stats, no_wrap=True, overflow="ellipsis"), width)

    return TwoLines(*columns, **kwargs)


class RichReporter(Reporter):
    """Live progress on a terminal, usable at 80 columns: a bar line with the counter, elapsed
    time, ETA and patience (never cut), and beneath it the latest losses, metric, best epoch,
    lr and gradient norm; for cv and tune, tasks with the last finished one's score."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self._progress: Any = None
        self._task: Any = None
        self.metric_name = "metric"
        self.total = 0
        self.patience: int | None = None
        self.started = 0.0

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def _bar(self, label: str, total: int | None) -> None:
        from rich.progress import BarColumn, TextColumn

        self._progress = _two_line_progress(
            *(TextColumn(f"[bold]{label}"), TextColumn("{task.fields[head]}")),
            BarColumn(bar_width=None),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total, stats="", head="")
        self.started = time.monotonic()

    def start(self, info: dict[str, Any]) -> None:
        """A bar per network: `--preset auto` starts one for each candidate (`candidate`),
        each counting to that candidate's own epoch limit."""
        self.close()  # the previous candidate's bar stays on screen as it ended
        self.metric_name = info.get("metric_name", "metric")
        self.total = int(info.get("epochs") or 0)
        self.patience = info.get("patience")
        candidate = info.get("candidate")
        self._bar(f"training {candidate}" if candidate else "training", self.total)

    def epoch(self, record: Any) -> None:
        if self._progress is None:
            return
        grad = max(record.grad_norms) if record.grad_norms else None
        stats = (
            f"loss {fmt(record.train_loss)} val {fmt(record.val_loss)} "
            f"{self.metric_name} {fmt(record.val_metric)} best {record.best_epoch} "
            f"lr {fmt(record.lr)} |g| {fmt(grad)}"
        )
        elapsed = time.monotonic() - self.started
        head = epoch_head(record, self.total, self.patience, elapsed)
        self._progress.update(self._task, completed=record.epoch, stats=stats, head=head)

    def stopped(self, result: Any) -> None:
        """The finished bar says where and why training stopped."""
        if self._progress is None:
            return
        why = STOPPED.get(result.stop_reason, result.stop_reason)
        head = (
            f"stopped at epoch {result.epochs_run}/{self.total} ({why}), "
            f"best {result.best_epoch}, {duration(time.monotonic() - self.started)}"
        )
        self._progress.update(self._task, completed=result.epochs_run, head=head)

    def task(self, noun: str, event: Any) -> None:
        if self._progress is None:
            self._bar(f"{noun}s", event.total)
        last = (
            "" if event.value is None else f"last: {event.what}, {event.metric} {fmt(event.value)}"
        )
        elapsed = time.monotonic() - self.started
        per_task = elapsed / max(1, event.done)
        head = f"{event.done}/{event.total} {duration(elapsed)} eta "
        head += duration(per_task * (event.total - event.done)) if event.done else "-"
        self._progress.update(self._task, completed=event.done, stats=last, head=head)

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
    """Routes the library's log records (warnings, decisions) to the reporter, each text once
    per command."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text in self.seen:  # the same decision again (tune's refit, every cv fold): once
            return
        self.seen.add(text)
        if record.levelno >= logging.WARNING:
            self.reporter.warning(text)
        else:
            self.reporter.message(text)
