"""`mlpcli explain` from the command line: files, stdout/stderr, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from mlpcli.cli import app

FEATURES = ["g1", "g2", "g3", "g4", "tissue"]


pytestmark = pytest.mark.usefixtures("plain_terminal")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A table where only g1 and g3 decide the class, and a model trained on it by the CLI."""
    folder = tmp_path_factory.mktemp("cli_explain")
    rng = np.random.default_rng(11)
    n = 300
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=FEATURES[:4])
    frame["tissue"] = rng.choice(["liver", "brain"], size=n)
    frame["sample"] = [f"s{i}" for i in range(n)]
    frame["status"] = np.where(frame["g1"] - frame["g3"] > 0, "case", "control")
    data = folder / "data.csv"
    frame.to_csv(data, index=False)
    european = folder / "data_eu.csv"
    frame.to_csv(european, index=False, sep=";", decimal=",")
    model = folder / "model.npz"
    result = CliRunner().invoke(
        app,
        [
            *("train", str(data), "--target", "status", "--id", "sample", "--hidden", "8"),
            *("--epochs", "100", "--out", str(model), "--quiet"),
        ],
    )
    assert result.exit_code == 0, result.output
    return {"data": data, "european": european, "model": model, "folder": folder}


def run(runner: CliRunner, files: dict[str, Path], *args: str) -> Result:
    return runner.invoke(app, ["explain", str(files["model"]), str(files["data"]), *args])


def test_writes_csv_and_shows_top_features_on_stderr(
    runner: CliRunner, files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "importance.csv"
    result = run(runner, files, "--out", str(out), "--top", "3", "--repeats", "4")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    table = pd.read_csv(out)
    assert list(table.columns) == ["feature", "importance", "sd", "rank"]
    assert set(table["feature"].head(2)) == {"g1", "g3"}
    assert "Top 3 of 5 features (permutation; baseline accuracy" in result.stderr
    shown = [f for f in FEATURES if f" {f} " in result.stderr]
    assert len(shown) == 3 and {"g1", "g3"} <= set(shown)


@pytest.mark.parametrize("method", ["permutation", "gradient", "integrated-gradients"])
def test_json_on_stdout_for_every_method(
    runner: CliRunner, files: dict[str, Path], method: str
) -> None:
    result = run(runner, files, "--method", method, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["method"] == method
    assert {f["feature"] for f in doc["features"][:2]} == {"g1", "g3"}
    paths = [i["path"] for i in doc["provenance"]["inputs"]]
    assert paths[0] == str(files["model"]) and len(paths) == 2
    assert (doc["completeness"] is not None) == (method == "integrated-gradients")


def test_csv_to_stdout(runner: CliRunner, files: dict[str, Path]) -> None:
    result = run(runner, files, "--method", "gradient", "--out", "-", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "feature,importance,sd,rank,effect"


def test_separator_and_decimal_override_give_the_same_result(
    runner: CliRunner, files: dict[str, Path]
) -> None:
    plain = run(runner, files, "-m", "gradient", "--json", "-q")
    eu = runner.invoke(
        app,
        [
            *("explain", str(files["model"]), str(files["european"]), "-m", "gradient"),
            *("--json", "-q", "--sep", ";", "--decimal", ","),
        ],
    )
    assert eu.exit_code == 0, eu.stderr
    one, two = json.loads(plain.stdout), json.loads(eu.stdout)
    assert [f["importance"] for f in one["features"]] == [f["importance"] for f in two["features"]]


def test_group_features_file(runner: CliRunner, files: dict[str, Path], tmp_path: Path) -> None:
    groups = tmp_path / "groups.toml"
    groups.write_text('signal = ["g1", "g3"]\n')
    result = run(runner, files, "--group-features", str(groups), "--json", "-q", "--repeats", "3")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["features"][0]["feature"] == "signal"
    assert doc["features"][0]["columns"] == ["g1", "g3"]
    assert str(groups) in [i["path"] for i in doc["provenance"]["inputs"]]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--method", "lime"], 2, "Unknown method 'lime'; choose one of: gradient,"),
        (["--method", "gradient", "--metric", "accuracy"], 2, "--metric applies to"),
        (["--metric", "r2"], 2, "--metric 'r2' does not apply to a binary model"),
        (["--json", "--out", "-"], 2, "--json and --out - both write to stdout"),
        (["--out", "/nonexistent/x.csv"], 2, "folder '/nonexistent' does not exist"),
    ],
    ids=["method", "metric-method", "metric-task", "stdout-twice", "out-folder"],
)
def test_usage_errors(
    runner: CliRunner, files: dict[str, Path], args: list[str], code: int, message: str
) -> None:
    result = run(runner, files, *args)
    assert result.exit_code == code
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_target_is_a_data_error(
    runner: CliRunner, files: dict[str, Path], tmp_path: Path
) -> None:
    unlabelled = tmp_path / "new.csv"
    pd.read_csv(files["data"]).drop(columns=["status"]).to_csv(unlabelled, index=False)
    result = runner.invoke(app, ["explain", str(files["model"]), str(unlabelled)])
    assert result.exit_code == 3
    assert "needs the target column(s) 'status'" in result.stderr
    result = runner.invoke(app, ["explain", str(files["model"]), str(unlabelled), "-m", "gradient"])
    assert result.exit_code == 0, result.stderr


def test_plot_without_matplotlib(
    runner: CliRunner, files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = run(runner, files, "--plot", str(tmp_path / "chart.png"))
    assert result.exit_code == 2
    assert 'pip install ".[plot]" in the mlpcli checkout' in result.stderr
    assert not (tmp_path / "chart.png").exists()


def _subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "mlpcli", "explain", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_real_process_separates_stdout_and_stderr(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ig.tsv"
    done = _subprocess(
        str(files["model"]),
        str(files["data"]),
        "-m",
        "integrated-gradients",
        "--json",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # nothing but the JSON document on stdout
    assert doc["method"] == "integrated-gradients"
    assert "completeness" in done.stderr and "Top 5 of 5 features" in done.stderr
    assert pd.read_csv(out, sep="\t").shape[0] == 5


@pytest.mark.slow
def test_real_process_exit_code_for_a_missing_model(files: dict[str, Path], tmp_path: Path) -> None:
    done = _subprocess(str(tmp_path / "absent.npz"), str(files["data"]))
    assert done.returncode == 4
    assert done.stderr.startswith("Error: ") and done.stdout == ""
