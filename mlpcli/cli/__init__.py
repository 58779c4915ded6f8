"""The command-line interface: the Typer app and its commands, one module per command family.

Importing a command module registers its commands on the shared app. Heavy imports (numpy,
pandas, the library) happen inside commands so `--help` answers fast, and `main()` imports
only the module of the command it runs (`COMMAND_MODULES`): `mlpcli inspect MODEL` neither
imports nor builds the cv, train or explain commands. `mlpcli --help` and `mlpcli COMMAND
--help` are drawn from the help kept by `cli/helpcache.py`, without importing Typer at all.
`from mlpcli.cli import app` gives the app with every command.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

__all__ = ["COMMAND_MODULES", "COMMAND_ORDER", "app", "load_commands", "main"]

#: Command -> the module of mlpcli.cli that registers it (tests/test_cli_docs.py checks it).
COMMAND_MODULES = {
    "train": "train",
    "split": "train",
    "predict": "model",
    "evaluate": "model",
    "inspect": "model",
    "cv": "cv",
    "tune": "cv",
    "explain": "explain",
    "plot": "plot",
    "report": "plot",
    "export": "export",
}

#: `mlpcli --help` lists the commands in the order of a piece of work: train and use a model,
#: choose one (cv, tune), understand it, ship it; then the helpers. Unlisted commands follow.
COMMAND_ORDER = (
    "train",
    "predict",
    "evaluate",
    "cv",
    "tune",
    "explain",
    "inspect",
    "report",
    "plot",
    "export",
    "split",
)


def help_text(doc: str) -> str:
    """A docstring as `--help` shows it: paragraphs joined into one line each (the terminal
    wraps them, at its own width), indented example lines kept as written, and `code` marks
    shown as plain quotes, since the help does not render Markdown."""
    import inspect

    paragraphs = []
    for block in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        lines = block.splitlines()
        if lines[0].startswith(" "):
            paragraphs.append(block)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return re.sub(r"`([^`]*)`", r"'\1'", "\n\n".join(paragraphs))


def _arrange() -> None:
    import typer

    from mlpcli.cli.common import Command, app

    rank = {name: i for i, name in enumerate(COMMAND_ORDER)}

    def key(info: typer.models.CommandInfo) -> int:
        name = info.name or (info.callback.__name__ if info.callback else "")
        return rank.get(name, len(rank))

    app.registered_commands.sort(key=key)
    for info in app.registered_commands:
        if info.cls in (None, typer.core.TyperCommand):
            info.cls = Command
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = help_text(info.callback.__doc__)


def load_commands(argv: Sequence[str] | None = None) -> typer.Typer:
    """The app with the commands `argv` (the arguments after `mlpcli`) can run: only the
    invoked command's module when the first argument names a command, else all of them
    (`mlpcli --help` lists every command; a mistyped name gets Click's suggestions)."""
    from mlpcli.cli.common import app

    first = argv[0] if argv else None
    wanted = [COMMAND_MODULES[first]] if first in COMMAND_MODULES else COMMAND_MODULES.values()
    for module in dict.fromkeys(wanted):
        importlib.import_module(f"mlpcli.cli.{module}")
    _arrange()
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return load_commands()
    if name in COMMAND_MODULES.values():
        return importlib.import_module(f"mlpcli.cli.{name}")
    raise AttributeError(f"module 'mlpcli.cli' has no attribute '{name}'")


def main() -> None:
    """Run the app. A plain help request is answered from `cli/helpcache.py`; a usage error
    Click reports (unknown command or option, missing value) is one `Error:` line with a
    pointer to `--help`, exit code 2, like every other error."""
    from mlpcli.cli import helpcache
    from mlpcli.stdio import drop_stdout, guard_standard_streams

    guard_standard_streams()
    name = helpcache.request(sys.argv[1:], COMMAND_MODULES)
    code = _help(name) if name is not None else _kept_inspect()
    if code is None:
        code = _run()
    if code:
        drop_stdout()  # whatever is still buffered must not fail the interpreter's exit
    _exit_quickly()
    sys.exit(code)


def _exit_quickly() -> None:
    """Spare the interpreter's shutdown its garbage collections over every object alive (the
    modules of pandas and pyarrow above all): frozen, they are never traversed again. On the
    whole `train` of 100,000 x 100 that shutdown was 0.28-0.42 s of wall time, frozen 0.07
    (load 5-7). Nothing is lost: the command's files are closed, atexit handlers still run,
    and objects outside reference cycles are still freed as the modules are cleared."""
    import gc

    gc.freeze()


def _describe(name: str) -> dict[str, Any]:
    """The help document of `mlpcli [NAME] --help`, built through Typer, with the context
    Click would give it."""
    from mlpcli.cli import helptext
    from mlpcli.cli.common import command_line, help_context

    load_commands([name] if name else [])
    ctx = help_context(command_line(), name or None)
    return helptext.describe(ctx.command, ctx)


def _help(name: str) -> int:
    """`mlpcli [NAME] --help` as Click would print it, from the kept document when there is one."""
    from mlpcli.cli import helpcache, helptext

    return _print(lambda: helpcache.help_text(name, _describe, helptext.draw))


def _kept_inspect() -> int | None:
    """`mlpcli inspect MODEL [--json]` from the text kept for this file and terminal
    (`cli/inspectcache.py`); None when there is none (Click runs the command)."""
    from mlpcli.cli import inspectcache

    form = inspectcache.request(sys.argv[1:])
    text = None if form is None else inspectcache.kept(*form)
    if text is None:
        return None
    kept: str = text
    return _print(lambda: kept)


def _print(produce: Callable[[], str]) -> int:
    """Write the text `produce()` gives to stdout: 0, or one `Error:` line and its exit code
    (stdout closed or full, an interrupt, a bug), never a traceback."""
    from mlpcli.errors import MlpcliError

    try:
        sys.stdout.write(produce())
        sys.stdout.flush()
        return 0
    except BrokenPipeError:
        return 141
    except MlpcliError as exc:  # stdout failing (`mlpcli --help > /dev/full`)
        message, code = str(exc), exc.exit_code
    except KeyboardInterrupt:
        message, code = "interrupted.", 130
    except Exception as exc:  # a bug: still one line, never a traceback
        from mlpcli.cli.common import internal_error

        message, code = internal_error(exc), 1
    from mlpcli.cli.common import print_error

    print_error(message)
    return code


def _run() -> int:
    """The command line through Click, every error one `Error:` line and its exit code."""
    import typer

    try:  # Typer >= 0.20 vendors Click; older Typer uses the click package.
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover
        from click import exceptions as click  # type: ignore[no-redef]

    from mlpcli.cli.common import command_line, print_error
    from mlpcli.errors import MlpcliError

    load_commands(sys.argv[1:])
    try:
        code = command_line()(standalone_mode=False, prog_name="mlpcli")
        sys.stdout.flush()  # a full disk under stdout is an error, not a silent loss
    except MlpcliError as exc:  # stdout failing outside a command (`--version > /dev/full`)
        print_error(str(exc))
        code = exc.exit_code
    except BrokenPipeError:
        code = 141
    except click.NoArgsIsHelpError as exc:
        sys.stderr.write((exc.ctx.get_help() if exc.ctx else "") + "\n")
        code = 2
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "mlpcli"
        print_error(f"{exc.format_message().rstrip('.')} (see '{command} --help').")
        code = exc.exit_code
    except typer.Abort:
        print_error("interrupted.")
        code = 130
    except click.ClickException as exc:
        print_error(exc.format_message())
        code = exc.exit_code
    except Exception as exc:  # a bug outside a command (parsing, drawing the help): one line
        from mlpcli.cli.common import internal_error, traceback_if_debugging

        traceback_if_debugging()
        print_error(internal_error(exc))
        code = 1
    return code if isinstance(code, int) else 0
