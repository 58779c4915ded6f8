"""`mlpcli cv` and `mlpcli tune` from the command line: files, stdout/stderr, exit codes."""

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

from mlpcli import modelfile
from mlpcli.cli import app

FAST = ["--hidden", "4", "--epochs", "10", "--batch-size", "16"]


pytestmark = pytest.mark.usefixtures("plain_terminal")


@pytest.fixture(scope="module")
def table(cohort_csv: Path) -> Path:
    """60 samples of 10 patients, two classes decided by g1 - g2."""
    return cohort_csv


def run(runner: CliRunner, *args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def cv_args(table: Path, *more: object) -> list[object]:
    return ["cv", table, "--target", "status", "--id", "sample", "--drop", "patient", *FAST, *more]


# --- cv -----------------------------------------------------------------------------------------


def test_cv_writes_results_and_out_of_fold_predictions(
    runner: CliRunner, table: Path, tmp_path: Path
) -> None:
    out, oof = tmp_path / "cv.json", tmp_path / "oof.csv"
    result = run(
        runner, *cv_args(table, "--folds", 3, "--repeats", 2, "--out", out, "--oof-out", oof)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # results go to files; the display to stderr
    assert (
        "Cross-validation: 3 folds x 2 repeat(s), stratified, binary, 60 samples" in result.stderr
    )
    assert "6/6 folds done; last: repeat 2 fold 3, accuracy " in result.stderr
    assert f"wrote {out}, {oof}" in result.stderr
    doc = json.loads(out.read_text())
    assert doc["folds"] == 3 and doc["repeats"] == 2 and doc["stratified"] is True
    assert [(f["repeat"], f["fold"]) for f in doc["per_fold"]] == [
        (r, f) for r in (1, 2) for f in (1, 2, 3)
    ]
    accuracy = doc["metrics"]["accuracy"]
    assert accuracy["mean"] == pytest.approx(np.mean(accuracy["values"]))
    assert doc["settings"]["model"]["hidden"] == [4]
    assert doc["provenance"]["inputs"][0]["path"].endswith("cohort.csv")
    predictions = pd.read_csv(oof)
    assert list(predictions.columns) == [
        "sample", "repeat", "fold", "true", "prediction", "proba_case", "proba_control"
    ]  # fmt: skip
    assert len(predictions) == 120 and predictions.groupby("repeat")[
        "sample"
    ].nunique().tolist() == [60, 60]


def test_cv_json_goes_to_stdout_and_nothing_else(runner: CliRunner, table: Path) -> None:
    result = run(runner, *cv_args(table, "--folds", 3, "--json", "--quiet"))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["per_fold"]) == 3
    assert result.stderr == ""


def test_cv_group_keeps_patients_whole(runner: CliRunner, table: Path, tmp_path: Path) -> None:
    oof = tmp_path / "oof.csv"
    args = ["cv", table, "--target", "status", "--id", "sample", "--group", "patient", *FAST]
    result = run(runner, *args, "--folds", 5, "--oof-out", oof, "--quiet")
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(oof).merge(pd.read_csv(table)[["sample", "patient"]], on="sample")
    assert predictions.groupby("patient")["fold"].nunique().max() == 1


def test_cv_reads_a_config_file_and_flags_override_it(
    runner: CliRunner, table: Path, tmp_path: Path
) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[model]\nhidden = "3"\n[train]\nepochs = 4\nlr = 0.02\n')
    result = run(
        runner, *cv_args(table, "--folds", 3, "--config", config, "--lr", "0.05", "--json")
    )
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)["settings"]
    # FAST's --hidden and --epochs are flags too: flags win over the file.
    assert settings["model"]["hidden"] == [4] and settings["train"]["epochs"] == 10
    assert settings["train"]["lr"] == 0.05
    bare = ["cv", table, "--target", "status", "--id", "sample", "--drop", "patient"]
    result = run(runner, *bare, "--folds", 3, "--config", config, "--json", "-q")
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)["settings"]
    assert settings["model"]["hidden"] == [3] and settings["train"]["lr"] == 0.02


def test_cv_progress_as_json_lines(runner: CliRunner, table: Path) -> None:
    result = run(runner, *cv_args(table, "--folds", 3, "--log-format", "jsonl"))
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    folds = [e for e in events if e["event"] == "fold"]
    assert [(e["done"], e["total"]) for e in folds] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert folds[-1]["metric"] == "accuracy" and 0.0 <= folds[-1]["value"] <= 1.0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--folds", "1"], 2, "--folds must be an integer of at least 2, got 1"),
        (["--folds", "61"], 2, "--folds 61 is more than the 60 samples"),
        (["--n-jobs", "0"], 2, "--n-jobs must be a whole number of at least 1, or -1; got 0"),
        (["--backend", "dask"], 2, "--backend dask needs --scheduler ADDRESS"),
        (["--backend", "ray"], 2, "--backend got 'ray'; choose one of: local, dask"),
        (["--valid-file", "x.csv"], 2, "--valid-file does not apply to cross-validation"),
        (["--out", "/nonexistent/cv.json"], 2, "--out '/nonexistent/cv.json': folder '/nonex"),
        (["--group", "ward"], 3, "cohort.csv: --group column 'ward' does not exist."),
    ],
    ids=["one-fold", "too-many-folds", "zero-jobs", "dask-without-scheduler", "unknown-backend",
         "valid-file", "unwritable-out", "missing-group"],
)  # fmt: skip
def test_cv_errors_exit_with_their_code(
    runner: CliRunner, table: Path, args: list[str], code: int, message: str
) -> None:
    result = run(runner, *cv_args(table, *args))
    assert result.exit_code == code, result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and message in error[0]
    assert "Traceback" not in result.output


# --- tune ---------------------------------------------------------------------------------------


@pytest.fixture
def space(tmp_path: Path) -> Path:
    path = tmp_path / "space.toml"
    path.write_text('lr = [1e-6, 0.05]\nhidden = ["", "4"]\n')
    return path


def tune_args(table: Path, space: Path, *more: object) -> list[object]:
    base = ["tune", table, "--target", "status", "--id", "sample", "--drop", "patient"]
    return [*base, "--space", space, "--epochs", "10", "--batch-size", "16", *more]


def test_tune_ranks_writes_tables_and_refits_the_best(
    runner: CliRunner, table: Path, space: Path, tmp_path: Path
) -> None:
    csv, js, model = tmp_path / "t.csv", tmp_path / "t.json", tmp_path / "best.npz"
    args = tune_args(table, space, "--cv", 3, "--results-csv", csv, "--results-json", js)
    result = run(runner, *args, "--out", model, "--metric", "roc_auc")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "Search: grid, 4 candidate(s), 3-fold cv, roc_auc (higher is better)" in result.stderr
    assert "12/12 tasks done; last: candidate 4 fold 3, roc_auc " in result.stderr
    assert "Refit summary" in result.stderr and str(model) in result.stderr  # the refit's table
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("Task:")][1:] == []  # said once, not twice
    ranked = pd.read_csv(csv, keep_default_na=False)
    assert ranked["rank"].tolist() == sorted(ranked["rank"].tolist())
    assert ranked.loc[0, "lr"] == 0.05  # a learning rate of 1e-6 learns nothing in 10 epochs
    assert set(ranked.columns) >= {"rank", "lr", "hidden", "mean", "sd", "seconds", "status"}
    doc = json.loads(js.read_text())
    assert doc["best"]["candidate"] == ranked["candidate"].iloc[0]
    meta = modelfile.read_metadata(model)
    assert meta["search"]["best"] == doc["best"]
    assert meta["settings"]["train"]["lr"] == 0.05
    assert meta["settings"]["model"]["hidden"] == ([] if ranked.loc[0, "hidden"] == "" else [4])


def test_tune_without_cv_scores_the_validation_split(
    runner: CliRunner, table: Path, space: Path
) -> None:
    result = run(runner, *tune_args(table, space, "--json", "-q"))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["scoring"] == "validation split" and doc["cv"] is None
    assert [len(row["scores"]) for row in doc["ranking"]] == [1, 1, 1, 1]


def test_tune_random_search(runner: CliRunner, table: Path, tmp_path: Path) -> None:
    space = tmp_path / "random.toml"
    space.write_text('lr = {distribution = "loguniform", low = 1e-3, high = 1e-1}\n')
    args = tune_args(table, space, "--search", "random", "--n-iter", 3, "--json", "-q")
    result = run(runner, *args)
    assert result.exit_code == 0, result.output
    lrs = [row["lr"] for row in json.loads(result.stdout)["ranking"]]
    assert len(set(lrs)) == 3 and all(1e-3 <= lr <= 1e-1 for lr in lrs)
    shown = run(runner, *args[:-2])  # the table rounds the sampled values
    assert all(f"{lr:.4g}" in shown.stderr and repr(lr) not in shown.stderr for lr in lrs)


def test_tune_warns_when_a_flag_is_searched(runner: CliRunner, table: Path, space: Path) -> None:
    result = run(runner, *tune_args(table, space, "--lr", "0.3", "-q"))
    assert result.exit_code == 0, result.output
    assert "Warning: --lr given on the command line is searched in --space" in result.stderr


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("learning_rate = [0.1]\n", [], "Unknown option(s) 'learning_rate' in --space"),
        ("lr = [0.1]\n", ["--metric", "r2"], "--metric r2 does not apply to a binary task"),
        ("lr = [0.1]\n", ["--metric", "auc"], "Unknown metric 'auc'; choose one of:"),
        ("lr = [0.1]\n", ["--search", "bayes"], "Unknown search 'bayes'; choose one of: grid"),
        ("lr = [0.1]\n", ["--repeats", "2"], "--repeats needs --cv K"),
    ],
    ids=["unknown-option", "wrong-task-metric", "unknown-metric", "unknown-search", "repeats"],
)
def test_tune_errors_are_usage_errors(
    runner: CliRunner, table: Path, tmp_path: Path, text: str, args: list[str], message: str
) -> None:
    space = tmp_path / "space.toml"
    space.write_text(text)
    result = run(runner, *tune_args(table, space, *args))
    assert result.exit_code == 2, result.output
    assert f"Error: {message}" in result.stderr


def test_tune_with_dask_missing_says_how_to_install(
    runner: CliRunner, table: Path, space: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    args = tune_args(table, space, "--backend", "dask", "--scheduler", "tcp://127.0.0.1:1")
    result = run(runner, *args)
    assert result.exit_code == 2, result.output
    assert (
        'Error: --backend dask needs the dask extra: pip install ".[dask]" in the mlpcli checkout'
        in result.stderr
    )


@pytest.mark.parametrize("command", ["cv", "tune"])
def test_help_explains_and_gives_an_example(runner: CliRunner, command: str) -> None:
    result = run(runner, command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout and f"mlpcli {command} sample_data/" in result.stdout
    for option in ("--n-jobs", "--backend", "--scheduler", "--hidden", "--lr", "--group"):
        assert option in result.stdout


# --- the installed command ----------------------------------------------------------------------


def mlpcli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mlpcli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.mark.slow
def test_real_cv_in_two_processes_matches_one(
    runner: CliRunner, table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "two.json"
    done = mlpcli(
        *cv_args(table, "--folds", 3, "--n-jobs", 2, "--out", out, "--json"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics"] == json.loads(out.read_text())["metrics"]
    assert "3/3 folds done" in done.stderr and "Cross-validation:" in done.stderr
    one = run(runner, *cv_args(table, "--folds", 3, "--n-jobs", 1, "--json", "-q"))
    assert json.loads(one.stdout)["metrics"] == json.loads(done.stdout)["metrics"]


@pytest.mark.slow
def test_real_tune_error_exit_code_and_no_partial_files(table: Path, tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text('hidden = ["4", "0"]\n')
    csv = tmp_path / "t.csv"
    done = mlpcli(*tune_args(table, space, "--results-csv", csv), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("Error: --space ")
    assert "--hidden takes positive layer sizes" in done.stderr
    assert list(tmp_path.iterdir()) == [space]
