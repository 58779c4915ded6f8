"""`train --calibrate` and `train --threshold`: stored in the model file, applied by predict,
evaluate and explain, shown by the summary and `inspect`, refused with one line where they
cannot work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpcli import calibration, modelfile
from mlpcli.cli import app
from mlpcli.trained import load_trained

pytestmark = pytest.mark.usefixtures("plain_terminal")

#: A short run on the session's two-class cohort (60 rows, 12 of them validation).
TRAIN = ("--target", "status", "--id", "sample", "--epochs", "15", "--hidden", "8", "--seed", "3")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def train(cohort: Path, out: Path, *extra: str) -> dict:
    metrics = out.with_suffix(".json")
    code, stdout, stderr = run(
        "train", str(cohort), *TRAIN, "--out", str(out), "--metrics-out", str(metrics), *extra
    )
    assert code == 0, stderr
    return {"stdout": stdout + stderr, "metrics": json.loads(metrics.read_text())}


def test_calibrate_keeps_the_weights_and_predict_applies_t(
    tmp_path: Path, cohort_csv: Path
) -> None:
    plain, calibrated = tmp_path / "plain.npz", tmp_path / "cal.npz"
    train(cohort_csv, plain)
    done = train(cohort_csv, calibrated, "--calibrate")
    record = done["metrics"]["calibration"]
    T = record["temperature"]
    assert 0.01 <= T <= 100 and record["n_rows"] == 12
    # T minimises the validation log loss and T = 1 is a candidate
    assert record["after"]["log_loss"] <= record["before"]["log_loss"] + 1e-12
    assert (
        "temperature" in done["stdout"]
        and "validation log loss (before -> after)" in done["stdout"]
    )
    # the stored weights are the trained ones, bit for bit
    _, raw_plain = modelfile.load_checked(plain)
    _, raw_cal = modelfile.load_checked(calibrated)
    for name, array in raw_plain.items():
        np.testing.assert_array_equal(raw_cal[name], array, err_msg=name)
    # predict: sigmoid(z / T) of the uncalibrated network's logits
    code, _, stderr = run(
        "predict", str(calibrated), str(cohort_csv), "--out", str(tmp_path / "p.csv")
    )
    assert code == 0, stderr
    got = pd.read_csv(tmp_path / "p.csv")["proba_case"].to_numpy()
    model = load_trained(plain)
    frame = pd.read_csv(cohort_csv)
    Z = calibration.logits(model.net, model.transform(frame))
    labels = model.encoder.labels
    expected = calibration.probabilities(Z, T)[:, labels.index("case")]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, calibration.probabilities(Z)[:, labels.index("case")], atol=1e-4)


def test_calibrate_without_validation_rows_is_one_line(tmp_path: Path, cohort_csv: Path) -> None:
    out = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", str(cohort_csv), *TRAIN, "--valid-fraction", "0", "--calibrate", "--out", str(out)
    )
    assert code == 2
    assert stderr.strip().splitlines()[-1] == (
        "Error: --calibrate is fitted on the validation rows, but there are none; set "
        "--valid-fraction above 0 or give --valid-file."
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--calibrate",), "--calibrate applies to binary or multiclass tasks"),
        (("--threshold", "auto"), "--threshold auto applies to binary tasks"),
        (("--threshold", "0.3"), "--threshold applies to binary or multilabel tasks"),
    ],
    ids=["calibrate", "threshold-auto", "threshold"],
)
def test_regression_refuses_them(
    tmp_path: Path, cohort_csv: Path, extra: tuple[str, ...], message: str
) -> None:
    code, _, stderr = run(
        "train", str(cohort_csv), "--target", "g3", "--id", "sample", "--epochs", "2",
        "--out", str(tmp_path / "m.npz"), *extra,
    )  # fmt: skip
    assert code == 2
    assert stderr.strip().splitlines()[-1] == f"Error: {message}, but the task is regression."


def test_threshold_values_are_checked(tmp_path: Path, cohort_csv: Path) -> None:
    code, _, stderr = run("train", str(cohort_csv), *TRAIN, "--threshold", "1.5", "--out", "m.npz")
    assert code == 2
    assert "--threshold takes a probability in [0, 1] or 'auto'; got '1.5'." in stderr


@pytest.mark.parametrize("metric", ["youden", "f1"])
def test_threshold_auto_is_chosen_on_validation_stored_and_used(
    tmp_path: Path, cohort_csv: Path, metric: str
) -> None:
    out, split = tmp_path / "m.npz", tmp_path / "split.csv"
    done = train(
        cohort_csv, out, "--threshold", "auto", "--threshold-metric", metric,
        "--split-out", str(split),
    )  # fmt: skip
    stored = done["metrics"]["threshold"]
    assert stored["metric"] == metric and stored["n_rows"] == 12
    assert done["metrics"]["metrics"]["validation"]["threshold"] == stored["value"]
    assert "decision threshold" in done["stdout"]
    # the same choice, recomputed from the saved model on its validation rows
    model = load_trained(out)
    frame = pd.read_csv(cohort_csv)
    valid = set(pd.read_csv(split).query("set == 'valid'")["sample"])
    rows = frame[frame["sample"].isin(valid)]
    p = model.predict_outputs(rows)[:, 0]
    positive = model.encoder.labels[1]
    again = calibration.choose_threshold((rows["status"] == positive).to_numpy(), p, metric)
    assert model.threshold == pytest.approx(again.threshold, rel=1e-12)
    # predict decides at the stored threshold unless --threshold says otherwise
    code, _, stderr = run("predict", str(out), str(cohort_csv), "--out", str(tmp_path / "p.csv"))
    assert code == 0, stderr
    pred = pd.read_csv(tmp_path / "p.csv")
    proba = pred[f"proba_{positive}"].to_numpy(np.float32)
    np.testing.assert_array_equal(
        pred["prediction"] == positive, proba >= np.float32(model.threshold)
    )
    code, _, _ = run(
        "predict", str(out), str(cohort_csv), "--threshold", "0.5", "--out", str(tmp_path / "q.csv")
    )
    half = pd.read_csv(tmp_path / "q.csv")
    np.testing.assert_array_equal(half["prediction"] == positive, proba >= 0.5)
    # evaluate reports at the stored threshold
    code, stdout, stderr = run("evaluate", str(out), str(cohort_csv), "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["threshold"] == pytest.approx(model.threshold)


def test_inspect_and_report_show_them(tmp_path: Path, cohort_csv: Path) -> None:
    out = tmp_path / "m.npz"
    train(cohort_csv, out, "--calibrate", "--threshold", "auto")
    code, stdout, stderr = run("inspect", str(out))
    assert code == 0, stderr
    assert "temperature" in stdout and "decision threshold" in stdout and "youden" in stdout
    code, stdout, _ = run("inspect", str(out), "--json")
    described = json.loads(stdout)
    assert described["calibration"]["temperature"] > 0
    assert described["threshold"]["metric"] == "youden"
    # report's training section (the whole report renders plots: seconds, tested in test_report)
    from mlpcli import report

    html = report._training_section(modelfile.read_metadata(out))
    assert "temperature" in html and "decision threshold" in html


def test_a_hostile_temperature_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    meta, arrays = modelfile.load_checked(tiny_model)
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version")}
    meta["calibration"] = {"temperature": 0.0}
    bad = tmp_path / "bad.npz"
    modelfile.save(bad, arrays, meta, now=True)
    code, _, stderr = run("inspect", str(bad))
    assert code == 4
    assert "calibration.temperature" in stderr and "at least 0.01" in stderr
