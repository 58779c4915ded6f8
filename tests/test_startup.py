"""Start-up (issue 16): what `mlpcli --help`, `train --help` and `inspect MODEL` import, in fresh
processes run as `mlpcli` runs. Timings live in bench/startup.py; this checks the imports that
make them slow: no numpy or pandas for help, no pandas for inspect, and no pydantic (which Typer
uses to check values) for any of the three."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXPRESSION, cache_env
from typer.testing import CliRunner

DRUG_RESPONSE = EXPRESSION.with_name("drug_response.csv")
HEAVY = ("numpy", "pandas", "pydantic", "rich")

#: Fresh Python processes, one per command line: deselected by `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


def _imported(*argv: str) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['mlpcli', *{list(argv)!r}]\n"
        "from mlpcli.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"COLUMNS": "80"} | cache_env(),
    )
    assert done.returncode == 0, done.stderr
    return set(done.stderr.split())


def _typer_checks_with_pydantic() -> bool:
    try:
        import typer._coercion  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["cv", "--help"]])
def test_help_imports_neither_numpy_nor_pandas_nor_pydantic_nor_rich(argv: list[str]) -> None:
    imported = _imported(*argv)
    assert imported & {"numpy", "pandas", "rich"} == set()  # rich: cli/helptext.py draws it
    if _typer_checks_with_pydantic():
        assert "pydantic" not in imported


def test_inspect_imports_neither_pandas_nor_pydantic(tiny_model: Path) -> None:
    imported = _imported("inspect", str(tiny_model))
    assert "pandas" not in imported
    if _typer_checks_with_pydantic():
        assert "pydantic" not in imported


def test_values_typed_on_the_command_line_are_still_checked(tiny_model: Path) -> None:
    """The deferred coercion (cli/common.py) passes through only values of the right type."""
    code = (
        "import sys\n"
        f"sys.argv = ['mlpcli', 'inspect', {str(tiny_model)!r}, '--rows', '-1']\n"
        "from mlpcli.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Invalid value for '--rows'" in done.stderr


def test_train_imports_no_pydantic(tmp_path: Path) -> None:
    """`train --target T --id ID ...`: the strings of repeatable options pass Typer's check
    without its pydantic adapter (cli/common.py), 0.1 s of the whole command's start-up."""
    argv = [
        *("train", str(EXPRESSION), "--target", "subtype", "--id", "sample_id", "--drop"),
        *("batch", "--epochs", "1", "--hidden", "4", "--out", str(tmp_path / "m.npz"), "-q"),
    ]
    imported = _imported(*argv)
    assert "pandas" in imported  # the command ran
    if _typer_checks_with_pydantic():
        assert "pydantic" not in imported


def test_repeatable_text_options_pass_as_the_adapter_would_give_them() -> None:
    """The deferred check of a `list[str]` option returns what Typer's own adapter returns."""
    if not _typer_checks_with_pydantic():
        pytest.skip("this Typer checks values without pydantic")
    from typer._coercion import build_runtime_param

    from mlpcli.cli import load_commands
    from mlpcli.cli.common import TEXTS, command_line

    load_commands(["train"])
    command = command_line().commands["train"]
    ctx = command.context_class(command, info_name="train")
    params = [p for p in command.params if getattr(p, "type_descriptor", None) is not None]
    texts = [p for p in params if p.type_descriptor.annotation == TEXTS]
    assert {"target", "id", "drop"} <= {p.name for p in texts}
    for param in texts:
        real = build_runtime_param(param.type_descriptor)
        for value in [None, (), ("a",), ("a", "b"), ["x"]]:
            ours = param._runtime_param.coerce(value, param=param, ctx=ctx)
            theirs = real.coerce(value, param=param, ctx=ctx)
            assert (type(ours), ours) == (type(theirs), theirs), (param.name, value)


def test_exit_skips_the_garbage_collections_of_shutdown() -> None:
    """`main()` freezes the objects alive before the interpreter exits (cli/__init__.py): its
    shutdown then never traverses pandas' modules (0.3 s of `train`'s wall time, loaded)."""
    code = (
        "import gc, sys\n"
        "sys.argv = ['mlpcli', '--version']\n"
        "from mlpcli.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "print(gc.get_freeze_count(), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stderr.split()[-1]) > 0


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]], ids=["mlpcli", "train"])
def test_help_a_second_time_imports_no_typer(argv: list[str]) -> None:
    """The first `--help` keeps its document next to the bytecode (cli/helpcache.py); the next
    one draws it without importing Typer or Click."""
    code = (
        "import sys\n"
        f"sys.argv = ['mlpcli', *{argv!r}]\n"
        "from mlpcli.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "print(' '.join(m for m in ('typer', 'click') if m in sys.modules), file=sys.stderr)"
    )
    env = {"COLUMNS": "80", "PATH": os.environ.get("PATH", "")}  # bytecode (and help) kept
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert runs[1].stderr.split() == []


@pytest.fixture(scope="module")
def model_kinds(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One model file per kind `inspect` describes differently: classic, recipe, ensemble,
    regression."""
    from mlpcli.cli import app

    folder = tmp_path_factory.mktemp("kinds")
    recipe = [str(EXPRESSION), "--target", "subtype", "--preset", "realmlp_td"]
    runs = {
        "recipe": recipe,
        "ensemble": [*recipe, "--ensemble", "2"],
        "regression": [str(DRUG_RESPONSE), "--target", "ic50", "--hidden", "8"],
    }
    models = {"classic": tiny_model}
    for kind, argv in runs.items():
        models[kind] = folder / f"{kind}.npz"
        result = CliRunner().invoke(
            app,
            ["train", *argv, "--epochs", "2", "--out", str(models[kind]), "-q"],
        )
        assert result.exit_code == 0, result.output
    return models


@pytest.mark.parametrize("kind", ["classic", "recipe", "ensemble", "regression"])
@pytest.mark.parametrize(
    ("form", "env"),
    [
        ([], {}),
        (["--json"], {}),
        ([], {"COLUMNS": "80"}),
        ([], {"NO_COLOR": "1", "COLUMNS": "120"}),
    ],
    ids=["text", "json", "80-columns", "no-colour"],
)
def test_kept_inspect_prints_the_rendered_text_byte_for_byte_without_numpy(
    model_kinds: dict[str, Path], kind: str, form: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    """The first `inspect MODEL` renders (numpy, Typer, rich) and keeps its text
    (cli/inspectcache.py); the second prints it, importing none of them: the same bytes. A
    third after the model file changed renders afresh."""
    model = tmp_path / "model.npz"
    model.write_bytes(model_kinds[kind].read_bytes())
    code = (
        "import sys\n"
        f"sys.argv = ['mlpcli', 'inspect', {str(model)!r}, *{form!r}]\n"
        "from mlpcli.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "print(' '.join(m for m in ('numpy', 'typer', 'rich') if m in sys.modules), "
        "file=sys.stderr)"
    )
    env = {"PATH": os.environ.get("PATH", ""), "MLPCLI_CACHE_DIR": str(tmp_path / "c"), **env}

    def run() -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
        assert done.returncode == 0, done.stderr
        return done

    rendered, kept = run(), run()
    assert {b"numpy", b"typer"} <= set(rendered.stderr.split())  # the rendering path
    assert kept.stderr.split() == []
    assert kept.stdout == rendered.stdout
    assert (b'"model": ' if form else b"model") in kept.stdout
    other = model_kinds["classic" if kind != "classic" else "regression"].read_bytes()
    model.write_bytes(other)  # the same name, other bytes: rendered again
    assert b"numpy" in run().stderr.split()
