"""README stays true: its two commands, its Python example, and CI running the same commands."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _first_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block, "README must start with a bash block of the two newcomer commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_install_and_run_then_install_and_test() -> None:
    main_job, tests = _first_commands()
    assert main_job.startswith("pip install . && mlpcli train sample_data/")
    assert tests.startswith("pip install ") and "&& pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    tests = _first_commands()[1]
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.slow
def test_readme_main_job_runs(tmp_path: Path) -> None:
    main_job = _first_commands()[0].split("&& ", 1)[1]
    argv = shlex.split(main_job)
    assert argv[0] == "mlpcli"
    out = argv.index("--out")
    argv[out + 1] = str(tmp_path / "model.npz")
    done = subprocess.run(
        [sys.executable, "-m", "mlpcli", *argv[1:]], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "model.npz").stat().st_size > 0
    assert "Training summary" in done.stderr and done.stdout == ""


def _section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert found, f"README has no section '{title}'"
    return found.group(1)


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Python block of the "Python API" section, in order, in one namespace, in a folder
    holding the sample data and a `model.npz` from `mlpcli train` (as README's first command)."""
    blocks = re.findall(r"```python\n(.*?)```", _section("Python API"), re.S)
    assert len(blocks) >= 2
    if "sklearn" in "".join(blocks):
        pytest.importorskip(
            "sklearn", reason='the sklearn extra is missing: pip install ".[sklearn]"'
        )
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    main_job = shlex.split(_first_commands()[0].split("&& ", 1)[1])
    main_job[main_job.index("--out") + 1] = "model.npz"
    done = subprocess.run(
        [sys.executable, "-m", "mlpcli", *main_job[1:], "--epochs", "20", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    predicted = subprocess.run(
        [sys.executable, "-m", "mlpcli", "predict", "clf.npz", "sample_data/expression.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith("row,prediction,proba_basal,proba_her2,proba_luminal\n")


@pytest.mark.parametrize("flag", ["--hidden", "--group-pattern", "--log-format", "--config"])
def test_documented_train_options_exist(flag: str) -> None:
    from typer.testing import CliRunner

    from mlpcli.cli import app

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert flag in result.output


@pytest.mark.parametrize("doc", ["README.md", "sample_data/README.md"])
def test_every_documented_train_command_names_its_output(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8").replace("\\\n", " ")
    commands = re.findall(r"^mlpcli train .*$", text, re.M)
    assert commands
    for command in commands:
        assert "--out" in command or "--resume" in command, command
