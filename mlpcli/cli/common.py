"""What every command shares: the Typer app, error handling and exit codes, signals, and the
reporter that shows progress on stderr. No numpy or pandas at import time.

Exit codes: 0 success, 2 usage error (bad option or value, unwritable output), 3 bad input data,
4 bad model file, 5 training diverged, 130 interrupted (SIGINT), 141 stdout reader gone,
143 terminated (SIGTERM),
1 unexpected internal error (rerun with --debug for the traceback).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlpcli import __version__
from mlpcli.cli.options import LOG_FORMATS, TYPE_METAVARS

if TYPE_CHECKING:  # imported inside the functions at run time, keeping --help fast
    from mlpcli.cli.display import Reporter
    from mlpcli.config import Settings

EXIT_CODES_HELP = (
    "Exit codes: 0 success · 2 bad option or value · 3 bad input data · "
    "4 bad model file · 5 training diverged · 130 interrupted · 141 stdout reader gone · "
    "143 terminated · "
    "1 internal error (rerun with --debug)."
)


class _Argument(typer.core.TyperArgument):
    """DATA, MODEL: written `DATA` in the usage line (Typer 0.29 writes `{DATA}`), with no type
    (`<str>`) beside the name in the Arguments panel."""

    def _usage_display_name(self) -> str:
        name = str(self.display_name_raw)
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def plain_metavars(command: Any, ctx: Any) -> None:
    """One metavar style in every help: flags (`--help` and Typer's own too) show none
    instead of `<bool>`, numbers show N or NUMBER instead of `<int>`, arguments their name."""
    help_option = command.get_help_option(ctx)
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if isinstance(param, typer.core.TyperArgument):
            param.__class__ = _Argument
        elif getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.metavar is None:
            descriptor = getattr(param, "type_descriptor", None)
            base = getattr(descriptor, "annotation", None)
            param.metavar = TYPE_METAVARS.get(base)  # type: ignore[arg-type]


def format_help(command: Any, ctx: Any, formatter: Any) -> None:
    """The help as `cli/helptext.py` draws it, not Typer's rich help (whose import of
    typer.rich_utils was over half of `train --help`'s start-up)."""
    from mlpcli.cli.helptext import render

    formatter.write(render(command, ctx))


class Command(typer.core.TyperCommand):
    """A command whose help follows `plain_metavars` and `format_help`."""

    def get_params(self, ctx: Any) -> Any:
        plain_metavars(self, ctx)
        return super().get_params(ctx)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        format_help(self, ctx, formatter)


class Group(typer.core.TyperGroup):
    """The root, whose `--help`, `--install-completion` follow `plain_metavars`, and whose
    help `format_help` draws."""

    def get_params(self, ctx: Any) -> Any:
        plain_metavars(self, ctx)
        return super().get_params(ctx)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        format_help(self, ctx, formatter)


app = typer.Typer(
    name="mlpcli",
    cls=Group,
    help=f"Train multilayer perceptrons on tabular CSV data.\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state: dict[str, Any] = {"debug": os.environ.get("MLPCLI_DEBUG", "") not in ("", "0")}


def version_callback(value: bool) -> None:
    if value:
        try:
            typer.echo(f"mlpcli {__version__}")
        except BrokenPipeError:  # Click would turn it into exit 1
            from mlpcli.stdio import drop_stdout

            drop_stdout()
            raise typer.Exit(141) from None
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=version_callback,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show Python tracebacks of unexpected errors."),
    ] = False,
) -> None:
    """Train multilayer perceptrons on tabular CSV data."""
    _state["debug"] = _state["debug"] or debug


def command_line() -> Any:
    """The Click group of `app`, as `main()` runs it, with Typer's per-value coercion deferred
    (see `_defer_coercion`)."""
    group = typer.main.get_command(app)
    _defer_coercion(group)
    return group


def _defer_coercion(group: Any) -> None:
    """Typer (0.2x) checks every parameter's value with a pydantic TypeAdapter, built on first
    use, even for a value that is already of the parameter's type (a flag's default, the
    None of an option not given): that alone imports pydantic, about a third of
    `train --help`'s start-up. Values already of a plain parameter's type (bool, str, int,
    float) are passed through here, as the adapter would return them, and so are the strings
    of a repeatable text option (`list[str]`: `--target`, `--id`, `--drop`...), as the list the
    adapter makes of them; any other value (every string typed on the command line for an int,
    say) builds and uses Typer's adapter as before. A Typer without these internals is left as
    it is (only slower)."""
    try:
        from dataclasses import dataclass

        from typer._coercion import RuntimeParam, build_runtime_param
    except ImportError:  # pragma: no cover
        return

    @dataclass(frozen=True)
    class Deferred(RuntimeParam):  # type: ignore[misc]
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if type(value) is self.annotation:
                return value
            if self.annotation == TEXTS and _all_text(value):
                return list(value)
            param._runtime_param = real = build_runtime_param(param.type_descriptor)
            return real._coerce_value(value, param=param, ctx=ctx)

    for command in [group, *getattr(group, "commands", {}).values()]:
        ctx = help_context(group, None if command is group else command.name)
        # Click makes the help option on first use, with the names the context gives it.
        for param in [*command.params, command.get_help_option(ctx)]:
            descriptor = getattr(param, "type_descriptor", None)
            if (
                descriptor is not None
                and getattr(param, "_runtime_param", False) is None
                and getattr(descriptor, "file_annotation", True) is None
                and descriptor.annotation in (bool, str, int, float, TEXTS)
                and descriptor.parameter_info.parser is None
            ):
                param._runtime_param = Deferred(
                    parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
                )


#: A repeatable text option's annotation, whose values `_defer_coercion` passes through.
TEXTS = list[str]


def _all_text(value: Any) -> bool:
    """A repeatable option's values as Click gives them, all strings (none typed otherwise)."""
    return isinstance(value, (list, tuple)) and all(type(item) is str for item in value)


def help_context(group: Any, name: str | None = None) -> Any:
    """The context Click gives `mlpcli [NAME] ...`: the root's (with its settings, such as the
    help option's names), or command NAME's under it."""
    root = group.context_class(group, info_name="mlpcli", **group.context_settings)
    if name is None:
        return root
    command = group.commands[name]
    return command.context_class(command, info_name=name, parent=root, **command.context_settings)


def print_error(message: str) -> None:
    """`Error: ...` on stderr; a JSON object instead under `--log-format jsonl`."""
    from mlpcli.errors import printable

    message = printable(message)
    if _state.get("log_format") == "jsonl":
        import json
        import time

        doc = {"event": "error", "time": round(time.time(), 3), "message": message}
        sys.stderr.write(json.dumps(doc) + "\n")
        return
    from mlpcli.cli.display import stderr_console

    console = stderr_console()
    if console.is_terminal:
        from mlpcli.cli.display import styled

        console.print(styled("[bold red]Error:[/bold red]", message, console), highlight=False)
    else:
        sys.stderr.write(f"Error: {message}\n")


def errors_to_exit_codes(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn mlpcli errors into `Error: ...` and their exit code; no traceback without --debug."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        from mlpcli.errors import MlpcliError, command_options

        try:
            with command_options(running_options()):
                return _all_or_nothing(func, *args, **kwargs)
        except MlpcliError as exc:
            traceback_if_debugging()
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except Stop as exc:
            print_error(f"interrupted ({exc}).")
            raise typer.Exit(128 + exc.signum) from None
        except KeyboardInterrupt:
            print_error("interrupted.")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:  # `mlpcli ... | head`: stop quietly, as Unix tools do
            from mlpcli.stdio import drop_stdout

            drop_stdout()
            raise typer.Exit(141) from None
        except OSError as exc:
            # Outside the library's own checks: a closed pipe, a full disk under stdout.
            traceback_if_debugging()
            what = exc.filename or "a stream"
            print_error(f"cannot read or write {what}: {exc.strerror or exc}.")
            raise typer.Exit(2) from None
        except Exception as exc:
            traceback_if_debugging()
            print_error(internal_error(exc))
            raise typer.Exit(1) from None

    return command


def internal_error(exc: BaseException) -> str:
    """The one line an unexpected error (a bug) prints instead of a traceback."""
    return (
        f"internal error: {type(exc).__name__}: {exc}. Rerun with --debug for the traceback, "
        "and please report it."
    )


def options_of(command: Any, parents: Sequence[Any] = ()) -> set[str]:
    """Every `--option` spelling of a Click command and of the groups above it (`--debug`)."""
    return {
        name
        for each in (command, *parents)
        for param in each.params
        for name in (*param.opts, *param.secondary_opts)
        if name.startswith("--")
    }


def running_options() -> set[str] | None:
    """The options of the command Click is running, or None outside Click (direct calls)."""
    try:  # Typer >= 0.17 carries its own copy of Click
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older Typer
        from click import get_current_context  # type: ignore[no-redef]

    ctx = get_current_context(silent=True)
    if ctx is None:
        return None
    parents = []
    parent = ctx.parent
    while parent is not None:
        parents.append(parent.command)
        parent = parent.parent
    return options_of(ctx.command, parents)


def _all_or_nothing(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a command with its output files staged: all are put in place when it succeeds
    (`typer.Exit(0)` included), none when it fails or is interrupted."""
    from mlpcli.outputs import OutputStage, staged_outputs

    stage: OutputStage
    with staged_outputs() as stage:
        try:
            return func(*args, **kwargs)
        except typer.Exit as exc:
            if exc.exit_code == 0:
                stage.commit()
            raise


def traceback_if_debugging() -> None:
    """With --debug, every error shows its traceback; the exit code stays the documented one."""
    if _state["debug"]:
        import traceback

        traceback.print_exc()


class Stop(BaseException):
    """Raised (outside training) when SIGINT or SIGTERM arrives. A BaseException, like
    KeyboardInterrupt, so no `except Exception` on the way (a reader's error translation)
    turns it into a data error."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """SIGINT/SIGTERM during training ask the loop to stop after the current batch; elsewhere
    they stop at once. Either way the run's staged output files are removed."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.training = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum
        if not self.training:
            raise Stop(signum)

    def stop_requested(self) -> bool:
        return self.signum is not None


@contextmanager
def catch_signals() -> Iterator[Signals]:
    handler = Signals()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield handler
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def use_cache(cache_dir: str | None, no_cache: bool) -> None:
    """Point the table cache at `--cache DIR` (or its default folder), or turn it off."""
    from mlpcli.data import cache
    from mlpcli.errors import UsageError

    if no_cache and cache_dir is not None:
        raise UsageError("--cache DIR and --no-cache contradict each other; pass one of them.")
    cache.use(None if no_cache else cache_dir or cache.default_root())


@contextmanager
def live_training(
    signals: Signals, reporter: Any, announce: str | None = None
) -> Iterator[dict[str, Any]]:
    """The hooks a training call takes (`**hooks`): epochs to the reporter, and SIGINT/SIGTERM
    during the epochs asking the loop to stop after the current batch instead of raising."""

    def on_start(info: dict[str, Any]) -> None:
        signals.training = True
        if announce:
            reporter.message(announce)
        reporter.start(info)

    try:
        yield {
            "callback": reporter.epoch,
            "should_stop": signals.stop_requested,
            "on_start": on_start,
        }
    finally:
        signals.training = False
        reporter.close()


def make_reporter(quiet: bool, log_format: str, every: int = 10) -> Reporter:
    import logging

    from mlpcli.cli.display import ReporterHandler
    from mlpcli.cli.display import make_reporter as build
    from mlpcli.errors import UsageError

    if log_format not in LOG_FORMATS:
        raise UsageError(
            f"--log-format got '{log_format}'; choose one of: {', '.join(LOG_FORMATS)}."
        )
    _state["log_format"] = log_format
    reporter = build(quiet=quiet, log_format=log_format, every=every)
    log = logging.getLogger("mlpcli")
    log.handlers[:] = [ReporterHandler(reporter)]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    return reporter


def resolve_settings(
    options: dict[str, Any], config: str | None, base: Settings | None = None
) -> Settings:
    """Settings as every training command builds them: defaults (or `base`, e.g. a resumed
    checkpoint's), then `--config FILE`, then the flags given on the command line."""
    from mlpcli import config as config_module

    file_values = config_module.read_config_file(config) if config else {}
    if options.get("preset") is not None:  # the preset's values first, under the file's
        base = config_module.resolve({"preset": options["preset"]}, base=base)
    settings = config_module.resolve(file_values, base=base, source=config or "")
    return config_module.resolve(options, base=settings, given_before=file_values)
