"""Every command registered on the app documents itself: a summary, an example that runs the
command itself, and help text on every option and argument (after sqlite-utils' test_docs.py).

The commands come from the app, not from a list here, so a new command is checked the moment
it is registered.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from mlpcli.cli import app

pytestmark = pytest.mark.usefixtures("plain_terminal")

#: name -> Click command, as registered (Typer may vendor its own Click, hence `Any`).
COMMANDS: dict[str, Any] = dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@functools.cache
def help_of(name: str, columns: int = 200) -> str:
    """`mlpcli NAME --help` (the root's for "") on a plain terminal `columns` wide, rendered
    once for every test that reads it (train's help alone takes a fifth of a second)."""
    env = {"COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"}
    result = CliRunner().invoke(app, [*([name] if name else []), "--help"], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_app_registers_commands() -> None:
    assert "train" in COMMANDS and len(COMMANDS) >= 2


def test_root_help_lists_every_registered_command() -> None:
    for name in COMMANDS:
        assert name in help_of("")


@pytest.mark.parametrize("name", sorted(COMMANDS), ids=sorted(COMMANDS))
def test_help_has_a_summary_and_an_example(name: str) -> None:
    summary = (COMMANDS[name].help or "").strip().splitlines()
    assert summary and summary[0].strip(), f"{name} has no docstring"
    assert "Example:" in help_of(name)
    example = help_of(name).split("Example:", 1)[1]
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


#: The one metavar style: an upper-case placeholder (FILE, COL, N, NAME), with literal
#: alternatives where a word stands in for a value (N|full, P|auto); none on a flag. Typer's
#: `<str>`/`<int range>`/`<bool>`, its `{DATA}` and Click's TEXT are all refused.
METAVAR = re.compile(r"[A-Z][A-Z0-9_]*(\|[a-z]+)*")
GROUP: Any = typer.main.get_command(app)


def _metavars(name: str) -> list[tuple[str, str]]:
    """(parameter, what its help shows for the value) for every parameter of a command as
    Typer renders it, the help option included; an argument's entry is its usage piece."""
    command = COMMANDS[name] if name else GROUP
    ctx = command.context_class(command, info_name=name or "mlpcli")
    shown = []
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            assert param.display_type_rich(ctx) is None, f"{name} {param.name}: a type is shown"
            shown.append((param.name, param.get_usage_pieces(ctx)[0].strip("[]")))
        elif param.is_flag:
            shown.append((param.opts[0], param.display_type_rich(ctx) or "FLAG"))
        else:
            shown.append((param.opts[0], param.display_type_rich(ctx) or ""))
    return shown


@pytest.mark.parametrize("name", ["", *sorted(COMMANDS)], ids=["mlpcli", *sorted(COMMANDS)])
def test_metavars_are_one_style(name: str) -> None:
    flags = {
        p.opts[0]
        for p in (COMMANDS[name] if name else GROUP).params
        if getattr(p, "is_flag", False)
    }
    wrong = [
        (param, shown)
        for param, shown in _metavars(name)
        if not (
            shown == "FLAG" if param in flags or param == "--help" else METAVAR.fullmatch(shown)
        )
    ]
    assert wrong == []
    typer_types = r"<(?:str|int|float|bool|path|uuid|datetime|list\[\w+\]|\w+ range)>"
    assert re.findall(typer_types + r"|\{[A-Z]+\}|\bTEXT\b", help_of(name)) == []


def _declared_flags() -> list[tuple[str, str]]:
    """(flag, where) for every `typer.Option(...)`/`typer.Argument(...)` written in the CLI
    package: its first flag literal, else the parameter (or alias) it is the annotation of."""
    import ast
    from pathlib import Path

    import mlpcli.cli

    found: list[tuple[str, str]] = []
    for path in sorted(Path(mlpcli.cli.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        owner: dict[int, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.arg) and node.annotation is not None:
                for inner in ast.walk(node.annotation):
                    owner[id(inner)] = "--" + node.arg.replace("_", "-")
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            if not (isinstance(func, ast.Attribute) and func.attr in ("Option", "Argument")):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args):
                continue  # the settings options, generated from config.py's fields
            literals = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value)]
            metavar = [
                k.value.value
                for k in node.keywords
                if k.arg == "metavar" and isinstance(k.value, ast.Constant)
            ]
            if func.attr == "Argument":
                name = f"argument {metavar[0] if metavar else owner.get(id(node), '?')}"
            else:
                name = str(literals[0]).split("/")[0] if literals else owner.get(id(node), "?")
            found.append((name, f"{path.name}:{node.lineno}"))
    return found


def test_every_option_is_declared_once() -> None:
    """Reusable options live in cli/options.py (a factory where the help differs by command),
    so no flag is declared twice, differently, in two command modules."""
    seen: dict[str, list[str]] = {}
    for name, where in _declared_flags():
        seen.setdefault(name, []).append(where)
    assert "?" not in seen, seen.get("?")
    assert {name: places for name, places in seen.items() if len(places) > 1} == {}


def test_shared_options_are_the_same_everywhere() -> None:
    """The same flag means the same thing: --n-jobs has -j wherever it is taken (cv, tune,
    explain), and DATA/--config/--json/--quiet come from one declaration."""
    for name, command in COMMANDS.items():
        for param in command.params:
            opts = set(getattr(param, "opts", ()))
            if "--n-jobs" in opts:
                assert "-j" in opts, name
            if "--out" in opts:
                assert "-o" in opts, name


def _body_lines(name: str) -> int:
    """Lines of a command's body after its docstring (imports included)."""
    import ast
    import inspect
    import textwrap

    func = inspect.unwrap(COMMANDS[name].callback)
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return int(body[-1].end_lineno) - int(body[0].lineno) + 1


@pytest.mark.parametrize("name", sorted(COMMANDS), ids=sorted(COMMANDS))
def test_command_bodies_stay_short(name: str) -> None:
    """A command parses its options, calls the core once and renders: about 30 lines, 40 at
    most; the rest belongs in the library or in cli/tables.py and cli/display.py."""
    assert _body_lines(name) <= 40


def test_command_modules_name_the_module_that_registers_each_command() -> None:
    from mlpcli.cli import COMMAND_MODULES

    registered = {
        info.name or info.callback.__name__: info.callback.__module__
        for info in app.registered_commands
        if info.callback is not None
    }
    assert registered == {name: f"mlpcli.cli.{m}" for name, m in COMMAND_MODULES.items()}


def test_a_command_loads_only_its_own_module() -> None:
    """`mlpcli inspect MODEL` imports and builds no other command family (start-up)."""
    code = (
        "import sys; from mlpcli.cli import load_commands; load_commands(['inspect', 'm.npz']); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('mlpcli.cli.'))))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "mlpcli.cli.model" in found
    assert not {"mlpcli.cli.train", "mlpcli.cli.cv", "mlpcli.cli.explain"} & set(found)


def test_commands_are_listed_in_workflow_order() -> None:
    from mlpcli.cli import COMMAND_ORDER

    listed = [
        line.split()[1]
        for line in help_of("").split("Commands", 1)[1].splitlines()
        if line.startswith("│ ") and line.split()[1] in COMMANDS
    ]
    assert listed[0] == "train"
    assert listed == sorted(listed, key=lambda n: (*COMMAND_ORDER, n).index(n))
    assert sorted(listed) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS), ids=sorted(COMMANDS))
def test_help_is_not_hard_wrapped_and_has_no_backticks(name: str) -> None:
    """The terminal wraps prose at its own width, so each paragraph is one line; the help
    renders no Markdown, so no literal backticks reach it."""
    text = COMMANDS[name].help or ""
    prose = [p for p in text.split("\n\n") if not p.startswith(" ")]
    assert [p for p in prose if "\n" in p] == []
    assert "`" not in help_of(name)


@pytest.mark.parametrize("name", sorted(COMMANDS), ids=sorted(COMMANDS))
def test_examples_fit_80_columns_and_break_between_options(name: str) -> None:
    """An example line never wraps at 80 columns (so a value is never cut from its option):
    continued lines end with a backslash and go on with an option."""
    example = (COMMANDS[name].help or "").split("Example:", 1)[1].strip("\n").splitlines()
    lines = [line for line in example if line.strip()]
    assert all(len(line) <= 76 for line in lines), lines  # with its indent, a margin of 1
    assert all(line.rstrip().endswith("\\") for line in lines[:-1]), lines
    assert all(line.strip().startswith("-") for line in lines[1:]), lines
    shown = help_of(name, 80).split("Example:", 1)[1]
    for line in lines:
        assert line.strip() in shown


@pytest.mark.parametrize(
    ("name", "flag", "expected"),
    [
        ("train", "--log-format", {"text", "jsonl"}),
        ("train", "--optimizer", {"adam", "sgd"}),
        ("cv", "--backend", {"local", "dask"}),
        ("tune", "--search", {"grid", "random"}),
        ("explain", "--method", {"permutation", "gradient", "integrated-gradients"}),
        ("explain", "--rule", {"gauss-legendre", "trapezoid"}),
        ("evaluate", "--plot-format", {"png", "svg", "pdf"}),
        ("export", "--format", {"onnx"}),
    ],
)
def test_option_values_complete_from_their_choices(
    name: str, flag: str, expected: set[str]
) -> None:
    command = COMMANDS[name]
    param = next(p for p in command.params if flag in getattr(p, "opts", ()))
    items = param.shell_complete(command.context_class(command), "")
    assert expected <= {item.value for item in items}
