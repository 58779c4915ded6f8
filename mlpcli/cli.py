"""The command-line interface: parse options, call the library, render results.

Heavy imports (numpy, pandas, the library) happen inside commands so `--help` answers fast.

Exit codes: 0 success, 2 usage error (bad option or value, unwritable output), 3 bad input data,
4 bad model file, 5 training diverged, 130 interrupted (SIGINT), 143 terminated (SIGTERM),
1 unexpected internal error (rerun with --debug for the traceback).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from mlpcli import __version__
from mlpcli.cli_options import with_settings_options

EXIT_CODES_HELP = (
    "Exit codes: 0 success · 2 bad option or value · 3 bad input data · 4 bad model file · "
    "5 training diverged · 130 interrupted · 143 terminated · 1 internal error (rerun with --debug)."
)

app = typer.Typer(
    name="mlpcli",
    help=f"Train multilayer perceptrons on tabular CSV data.\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": os.environ.get("MLPCLI_DEBUG", "") not in ("", "0")}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlpcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show Python tracebacks of unexpected errors.")
    ] = False,
) -> None:
    """Train multilayer perceptrons on tabular CSV data."""
    _state["debug"] = _state["debug"] or debug


def _error(message: str) -> None:
    from mlpcli.display import stderr_console

    console = stderr_console()
    if console.is_terminal:
        console.print(f"[bold red]Error:[/bold red] {message}", highlight=False)
    else:
        sys.stderr.write(f"Error: {message}\n")


def _errors_to_exit_codes(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn mlpcli errors into `Error: ...` and their exit code; no traceback without --debug."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        from mlpcli.errors import MlpcliError

        try:
            return func(*args, **kwargs)
        except MlpcliError as exc:
            if _state["debug"]:
                raise
            _error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except _Stop as exc:
            raise typer.Exit(128 + exc.signum) from None
        except KeyboardInterrupt:
            _error("interrupted.")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if _state["debug"]:
                raise
            _error(
                f"internal error: {type(exc).__name__}: {exc}. Rerun with --debug for the "
                "traceback, and please report it."
            )
            raise typer.Exit(1) from None

    return command


class _Stop(Exception):
    """Raised (outside training) when SIGINT or SIGTERM arrives."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """SIGINT/SIGTERM during training ask the loop to stop after the current batch; elsewhere
    they stop at once. Either way temporary files are removed by the atomic writers."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.training = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum
        if not self.training:
            raise _Stop(signum)

    def stop_requested(self) -> bool:
        return self.signum is not None


@contextmanager
def _catch_signals() -> Iterator[_Signals]:
    handler = _Signals()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield handler
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only warnings and errors.")]
LogFormat = Annotated[
    str, typer.Option("--log-format", help="Progress on stderr: text, or jsonl (one JSON per line).")
]
LogEvery = Annotated[
    int, typer.Option("--log-every", min=1, help="Plain-text progress every N epochs (non-terminals).")
]


def _reporter(quiet: bool, log_format: str, every: int = 10) -> Any:
    import logging

    from mlpcli.display import ReporterHandler, make_reporter
    from mlpcli.errors import UsageError

    if log_format not in ("text", "jsonl"):
        raise UsageError(f"--log-format got '{log_format}'; choose one of: text, jsonl.")
    reporter = make_reporter(quiet=quiet, log_format=log_format, every=every)
    log = logging.getLogger("mlpcli")
    log.handlers[:] = [ReporterHandler(reporter)]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    return reporter


@app.command()
@_errors_to_exit_codes
@with_settings_options()
def train(
    data: Annotated[str, typer.Argument(help="Table to train on (CSV/TSV, maybe compressed; - for stdin).", show_default=False)],
    *,
    out: Annotated[str, typer.Option("--out", "-o", help="Model file to write (.npz).", rich_help_panel="Output", show_default=False)],
    metrics_out: Annotated[str | None, typer.Option(help="Write final metrics as JSON.", rich_help_panel="Output")] = None,
    history_out: Annotated[str | None, typer.Option(help="Write per-epoch history as CSV.", rich_help_panel="Output")] = None,
    split_out: Annotated[str | None, typer.Option(help="Write each sample's ID and its set (train/valid) as CSV.", rich_help_panel="Output")] = None,
    config: Annotated[str | None, typer.Option(help="TOML file supplying any option; flags override it.", rich_help_panel="Output")] = None,
    save_on_interrupt: Annotated[bool, typer.Option(help="On SIGINT/SIGTERM, save the best weights so far (marked interrupted).", rich_help_panel="Output")] = False,
    quiet: Quiet = False,
    log_format: LogFormat = "text",
    log_every: LogEvery = 10,
    options: dict[str, Any],
) -> None:
    """Train a network on a table and save one model file.

    Example:

        mlpcli train sample_data/expression.csv --target subtype --id sample_id --out model.npz
    """
    from mlpcli import config as config_module
    from mlpcli import workflows

    reporter = _reporter(quiet, log_format, log_every)
    file_values = config_module.read_config_file(config) if config else {}
    settings = config_module.resolve(file_values, source=config or "")
    settings = config_module.resolve(options, base=settings)
    workflows.check_outputs(
        {"--out": out, "--metrics-out": metrics_out, "--history-out": history_out,
         "--split-out": split_out}
    )
    with _catch_signals() as signals:
        def on_start(info: dict[str, Any]) -> None:
            signals.training = True
            reporter.start(info)

        try:
            outcome = workflows.train(
                data, settings, callback=reporter.epoch, should_stop=signals.stop_requested,
                on_start=on_start,
            )
        finally:
            signals.training = False
            reporter.close()
        interrupted = outcome.result.stop_reason == "interrupted"
        if interrupted and not save_on_interrupt:
            reporter.warning("Interrupted: no model written (use --save-on-interrupt to keep "
                             "the best weights so far).")
        else:
            outcome.written = workflows.write_outputs(
                outcome, out, metrics_out=metrics_out, history_out=history_out,
                split_out=split_out, interrupted=interrupted,
            )
        reporter.table(_summary(outcome))
    if interrupted:
        raise typer.Exit(128 + (signals.signum or signal.SIGINT))


def _summary(outcome: Any) -> Any:
    from mlpcli.display import summary_table

    result = outcome.result
    rows: list[tuple[str, Any]] = [
        ("task", outcome.prepared.task.task),
        ("epochs run", result.epochs_run),
        ("best epoch", result.best_epoch),
        ("stop reason", result.stop_reason),
        (f"best {result.monitor}", result.best_value),
    ]
    for split in ("validation", "train"):
        report = outcome.metrics.get(split)
        if report:
            for key in ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "r2", "rmse", "mae"):
                value = report.get(key, report.get("average", {}).get(key) if isinstance(report.get("average"), dict) else None)
                if isinstance(value, float):
                    rows.append((f"{split} {key}", value))
    rows.append(("time", f"{result.seconds:.1f} s"))
    rows.extend(("wrote", path) for path in outcome.written)
    return summary_table("Training summary", rows)


def main() -> None:
    app()
