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


def test_readme_python_example_runs() -> None:
    code = re.search(r"## Python API\n\n```python\n(.*?)```", README, re.S)
    assert code
    exec(compile(code.group(1), "README.md", "exec"), {})


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
