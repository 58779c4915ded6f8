"""`train` and `cv` report a constant and a linear baseline beside the network, and hint at
regularisation when the training rows score far better than the held-out ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpcli import modelfile
from mlpcli.cli import app

pytestmark = pytest.mark.usefixtures("plain_terminal")

TRAIN = ("--target", "status", "--id", "sample", "--epochs", "15", "--hidden", "8", "--seed", "3")
KEYS = {"metric", "constant_rule", "network", "constant", "linear", "gap", "hints"}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_train_reports_both_baselines_and_keeps_the_weights(
    tmp_path: Path, cohort_csv: Path
) -> None:
    with_, without = tmp_path / "with.npz", tmp_path / "without.npz"
    code, _, stderr = run(
        "train",
        str(cohort_csv),
        *TRAIN,
        "--out",
        str(with_),
        "--metrics-out",
        str(tmp_path / "m.json"),
    )
    assert code == 0, stderr
    record = json.loads((tmp_path / "m.json").read_text())["baselines"]
    assert set(record) == KEYS
    assert record["metric"] == "accuracy" and record["constant_rule"] == "majority"
    for model in ("network", "constant", "linear"):
        assert 0.0 <= record[model]["validation"] <= 1.0 and 0.0 <= record[model]["train"] <= 1.0
    assert record["linear"]["epochs_run"] >= 1 and record["linear"]["seconds"] >= 0
    gap = record["gap"]
    assert gap["measure"] == "train accuracy - validation accuracy"
    assert gap["value"] == pytest.approx(
        record["network"]["train"] - record["network"]["validation"]
    )
    assert "baseline majority accuracy" in stderr and "baseline linear accuracy" in stderr
    assert "train-validation gap" in stderr
    # the baselines never touch the network: the same weights as with --no-baselines
    code, _, stderr = run("train", str(cohort_csv), *TRAIN, "--no-baselines", "--out", str(without))
    assert code == 0, stderr
    assert "baseline" not in stderr
    meta, arrays = modelfile.load_checked(with_)
    meta_off, arrays_off = modelfile.load_checked(without)
    assert "baselines" in meta and "baselines" not in meta_off
    for name, array in arrays_off.items():
        np.testing.assert_array_equal(arrays[name], array, err_msg=name)


def test_regression_baseline_is_the_mean(tmp_path: Path, cohort_csv: Path) -> None:
    code, _, stderr = run(
        "train", str(cohort_csv), "--target", "g3", "--id", "sample", "--drop", "status",
        "--epochs", "5", "--out", str(tmp_path / "r.npz"),
        "--metrics-out", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert code == 0, stderr
    record = json.loads((tmp_path / "r.json").read_text())["baselines"]
    assert record["metric"] == "r2" and record["constant_rule"] == "mean"
    assert record["constant"]["train"] == pytest.approx(0.0, abs=1e-9)  # R^2 of the own mean
    assert record["gap"]["measure"] == "validation MSE / train MSE"
    assert "baseline mean r2" in stderr


def test_a_network_that_memorises_noise_gets_a_hint(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 5)), columns=[f"g{i}" for i in range(5)])
    frame["status"] = rng.permutation(["a", "b"] * 30)  # labels unrelated to the features
    frame.to_csv(tmp_path / "noise.csv", index=False)
    code, _, stderr = run(
        "train", str(tmp_path / "noise.csv"), "--target", "status", "--hidden", "64",
        "--epochs", "300", "--monitor", "train_loss", "--lr", "0.01",
        "--out", str(tmp_path / "m.npz"),
    )  # fmt: skip
    assert code == 0, stderr
    hints = [line for line in stderr.splitlines() if line.startswith("Hint: ")]
    assert any("train accuracy - validation accuracy" in h and "--weight-decay" in h for h in hints)
    assert any("no better than the majority-class baseline" in h for h in hints)


def test_cv_reports_the_baselines_per_fold(tmp_path: Path, cohort_csv: Path) -> None:
    args = ("cv", str(cohort_csv), *TRAIN, "--folds", "3", "--json")
    code, stdout, stderr = run(*args)
    assert code == 0, stderr
    record = json.loads(stdout)["baselines"]
    assert set(record) == KEYS
    for model in ("network", "constant", "linear"):
        assert record[model]["n"] == 3 and len(record[model]["values"]) == 3
    assert record["gap"]["measure"] == "train accuracy - test accuracy"
    assert "majority-class baseline" in stderr and "linear baseline" in stderr
    code, stdout, _ = run(*args, "--no-baselines")
    assert code == 0 and json.loads(stdout)["baselines"] is None
