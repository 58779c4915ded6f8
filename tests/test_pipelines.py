"""The Snakemake and Make examples, run for real on a temporary copy of the repository layout:
the pipeline produces every output (each JSON with its provenance), a second run does nothing,
and a failing rule exits non-zero and leaves no output behind."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: End to end (Make and Snakemake run the installed command): deselected by `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUTPUTS = [
    "train.csv",
    "test.csv",
    "model.npz",
    "train_metrics.json",
    "history.csv",
    "predictions.csv",
    "test_metrics.json",
    "cv.json",
    "curves.png",
    "report.html",
]
LOGS = ["train.log", "predict.log", "evaluate.log", "cv.log", "plot.log", "report.log"]
#: JSON outputs and the inputs their provenance must list (by path relative to the example).
PROVENANCE = {
    "train_metrics.json": ["results/train.csv"],
    "test_metrics.json": ["results/model.npz", "results/test.csv"],
    "cv.json": ["results/train.csv"],
}


@dataclass(frozen=True)
class Tool:
    """How to run one example: its folder, the command, and arguments that make train fail."""

    folder: str
    missing: Callable[[], str | None]  # why it cannot run here, or None
    command: Callable[[Path], list[str]]
    failing: list[str]


def _no_snakemake() -> str | None:
    if importlib.util.find_spec("snakemake") is None:
        return 'snakemake is not installed (it is in the test extra: pip install ".[test]")'
    return None


def _no_make() -> str | None:
    return None if shutil.which("make") else "GNU make is not installed"


TOOLS = {
    "snakemake": Tool(
        folder="snakemake",
        missing=_no_snakemake,
        command=lambda d: [
            *(sys.executable, "-m", "snakemake", "--cores", "1"),
            *("--snakefile", str(d / "Snakefile"), "--directory", str(d)),
        ],
        failing=["--config", "train_options=--optimizer bogus"],
    ),
    "make": Tool(
        folder="make",
        missing=_no_make,
        command=lambda d: ["make", "-C", str(d)],
        failing=["TRAIN_OPTIONS=--optimizer bogus"],
    ),
}


def _missing_commands() -> str | None:
    """The pipelines call predict, evaluate, cv, plot and report; each must exist."""
    mlpcli = BIN / "mlpcli"
    if not mlpcli.exists():
        return f"the mlpcli console script is not installed next to {sys.executable}"
    for command in ("predict", "evaluate", "cv", "plot", "report"):
        done = subprocess.run([str(mlpcli), command, "--help"], capture_output=True, timeout=60)
        if done.returncode != 0:
            return f"`mlpcli {command} --help` fails: that command is not available yet"
    if importlib.util.find_spec("matplotlib") is None:
        return 'the plot and report rules need matplotlib: pip install ".[plot]"'
    return None


@pytest.fixture(scope="module")
def commands_available() -> None:
    reason = _missing_commands()
    if reason:
        pytest.skip(reason)


def example_copy(root: Path, tool: Tool) -> Path:
    """examples/<tool> and sample_data copied under `root`, keeping their relative paths."""
    shutil.copytree(REPO / "examples" / tool.folder, root / "examples" / tool.folder)
    shutil.copytree(REPO / "sample_data", root / "sample_data")
    return root / "examples" / tool.folder


def run(tool: Tool, folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [*tool.command(folder), *extra],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def output_times(folder: Path) -> dict[str, int]:
    return {name: (folder / "results" / name).stat().st_mtime_ns for name in OUTPUTS}


@pytest.fixture(scope="module", params=sorted(TOOLS), ids=sorted(TOOLS))
def pipeline(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    commands_available: None,
) -> dict[str, Any]:
    tool = TOOLS[request.param]
    reason = tool.missing()
    if reason:
        pytest.skip(reason)
    folder = example_copy(tmp_path_factory.mktemp(tool.folder), tool)
    first = run(tool, folder)
    return {"tool": tool, "folder": folder, "first": first}


def test_pipeline_writes_every_output(pipeline: dict[str, Any]) -> None:
    first, folder = pipeline["first"], pipeline["folder"]
    assert first.returncode == 0, first.stdout + first.stderr
    results = folder / "results"
    assert sorted(p.name for p in results.iterdir()) == sorted(OUTPUTS)  # no temporary files
    assert all((results / name).stat().st_size > 0 for name in OUTPUTS)
    train_rows = (results / "train.csv").read_text().splitlines()
    test_rows = (results / "test.csv").read_text().splitlines()
    assert (len(train_rows), len(test_rows)) == (481, 121)  # 600 rows, every 5th held out
    predictions = (results / "predictions.csv").read_text().splitlines()
    assert predictions[0].startswith("sample_id,prediction")
    assert [row.split(",")[0] for row in predictions[1:]] == [
        row.split(",")[0] for row in test_rows[1:]
    ]
    assert json.loads((results / "cv.json").read_text())["folds"] == 3
    assert (results / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (results / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    logs = folder / "logs"
    assert all((logs / name).exists() for name in LOGS)
    assert "epoch 1/40" in (logs / "train.log").read_text()


@pytest.mark.parametrize("name", sorted(PROVENANCE))
def test_every_json_output_carries_provenance(pipeline: dict[str, Any], name: str) -> None:
    folder = pipeline["folder"]
    assert pipeline["first"].returncode == 0
    provenance = json.loads((folder / "results" / name).read_text())["provenance"]
    assert {"command", "mlpcli_version", "numpy_version", "seed", "inputs"} <= provenance.keys()
    assert Path(provenance["command"][0]).name == "mlpcli"
    expected = [
        {"path": path, "sha256": hashlib.sha256((folder / path).read_bytes()).hexdigest()}
        for path in PROVENANCE[name]
    ]
    assert provenance["inputs"] == expected


def test_second_run_does_nothing(pipeline: dict[str, Any]) -> None:
    tool, folder = pipeline["tool"], pipeline["folder"]
    assert pipeline["first"].returncode == 0
    before = output_times(folder)
    again = run(tool, folder)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing to be done" in again.stdout + again.stderr
    assert output_times(folder) == before


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_failing_rule_leaves_no_output(name: str, tmp_path: Path, commands_available: None) -> None:
    tool = TOOLS[name]
    reason = tool.missing()
    if reason:
        pytest.skip(reason)
    folder = example_copy(tmp_path, tool)
    done = run(tool, folder, *tool.failing)
    assert done.returncode != 0
    results = folder / "results"
    left = sorted(p.name for p in results.iterdir()) if results.exists() else []
    assert set(left) <= {"train.csv", "test.csv"}, left  # made before train failed; no .tmp
    # train and cv share the bad option and both wait only on split, so either may run (and
    # fail) first; the tool stops there, and the other rule's log may never be written.
    logs = [folder / "logs" / name for name in ("train.log", "cv.log")]
    written = [log.read_text() for log in logs if log.exists()]
    assert written, f"neither train.log nor cv.log was written:\n{done.stdout}\n{done.stderr}"
    assert all("Error: --optimizer got 'bogus'; choose one of:" in log for log in written)
