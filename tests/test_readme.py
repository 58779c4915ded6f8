"""README stays true: its two commands, its Python example, and CI running the same commands."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
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
    # as a newcomer runs it: the default preset, not the suite's MLPCLI_PRESET=classic
    env = {k: v for k, v in os.environ.items() if k != "MLPCLI_PRESET"}
    done = subprocess.run(
        [sys.executable, "-m", "mlpcli", *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "model.npz").stat().st_size > 0
    assert "Training summary" in done.stderr and done.stdout == ""
    assert "--preset auto chose" in done.stderr


def _section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert found, f"README has no section '{title}'"
    return found.group(1)


@pytest.fixture
def readme_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding the sample data and a `model.npz` from README's first command
    (fewer epochs), made the current directory."""
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    main_job = shlex.split(_first_commands()[0].split("&& ", 1)[1])
    main_job[main_job.index("--out") + 1] = "model.npz"
    done = _mlpcli(tmp_path, *main_job[1:], "--epochs", "20", "--quiet")
    assert done.returncode == 0, done.stderr
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _mlpcli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpcli", *args], cwd=folder, capture_output=True, text=True
    )


def _run_python_blocks(section: str, extra: str) -> None:
    """Every Python block of a README section, in order, in one namespace."""
    blocks = re.findall(r"```python\n(.*?)```", _section(section), re.S)
    assert blocks, f"README section '{section}' has no Python example"
    pytest.importorskip(extra, reason=f'an extra is missing: pip install ".[{extra}]"')
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)


@pytest.mark.slow
def test_readme_python_api_examples_run(readme_folder: Path) -> None:
    _run_python_blocks("Python API", "sklearn")
    predicted = _mlpcli(readme_folder, "predict", "clf.npz", "sample_data/expression.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith("row,prediction,proba_basal,proba_her2,proba_luminal\n")


@pytest.mark.slow
def test_readme_export_examples_run(readme_folder: Path) -> None:
    pytest.importorskip("onnx", reason='the onnx extra is missing: pip install ".[onnx]"')
    block = re.search(r"```bash\n(.*?)```", _section("Export"), re.S)
    assert block
    commands = [line.split("  #")[0] for line in block.group(1).splitlines() if line]
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "mlpcli", command
        done = _mlpcli(readme_folder, *argv[1:])
        assert done.returncode == 0, (command, done.stderr)
    assert "onnx (yes)" in done.stdout
    assert (readme_folder / "model.onnx").stat().st_size > 0
    _run_python_blocks("Export", "onnxruntime")


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


def _cohort_h5ad(path: Path) -> None:
    """An AnnData file like the one README's inline example trains on: 60 cells x 5 genes,
    obs `cell_type` and `donor`, a `counts` layer."""
    from test_formats import _dataframe, _matrix

    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(60, 5)).astype(np.float32)
    counts[:30, 0] += 10  # T cells express gene g0
    obs = pd.DataFrame(
        {"cell_type": ["T"] * 30 + ["B"] * 30, "donor": [f"d{i % 6}" for i in range(60)]}
    )
    with h5py.File(path, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        _dataframe(f.create_group("obs"), [f"cell{i:02d}" for i in range(60)], obs)
        _dataframe(f.create_group("var"), [f"g{j}" for j in range(5)], obs[[]])
        _matrix(f, "X", np.log1p(counts), "csr_matrix")
        layers = f.create_group("layers")
        layers.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        _matrix(layers, "counts", counts, "csr_matrix")


@pytest.mark.slow
def test_readme_your_data_examples_run(tmp_path: Path) -> None:
    """Each command of "Your data", in order, in one folder holding the sample data: its bash
    blocks (shell lines through bash, `mlpcli` and `python` being this interpreter) and its
    inline `mlpcli ...` examples."""
    for extra in ("pyarrow", "openpyxl", "h5py"):
        pytest.importorskip(
            extra, reason='an extra is missing: pip install ".[parquet,excel,anndata]"'
        )
    section = _section("Your data")
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    commands = [line for line in lines if line and not line.startswith(("#", "pip install "))]
    # Inline examples are whole commands (with options); `mlpcli split` alone names one.
    inline = [c for c in re.findall(r"`(mlpcli [^`]+)`", section.replace("\n", " ")) if "--" in c]
    assert len(commands) >= 10 and inline, (commands, inline)
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    _cohort_h5ad(tmp_path / "cohort.h5ad")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, run in (("python", ""), ("mlpcli", " -m mlpcli")):  # a venv's python by its path
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}"{run} "$@"\n')
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for command in [*commands, *inline]:
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stderr)
    for made in ("model.npz", "predictions.csv", "model_xlsx.npz", "sheet.npz", "top20.npz"):
        assert (tmp_path / made).stat().st_size > 0, made
    assert (tmp_path / "expression.test.csv").exists() and (tmp_path / "genes.npz").exists()
