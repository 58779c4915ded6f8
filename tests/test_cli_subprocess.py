"""Real runs of the installed command: train on sample_data, then predict, evaluate and inspect
in subprocesses, checking files, exit codes and what goes to stdout and stderr."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import cache_env

#: End to end (the installed command in real processes): deselected by `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXPRESSION = ROOT / "sample_data" / "expression.csv"
DRUG = ROOT / "sample_data" / "drug_response.csv"


def mlpcli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpcli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
        | cache_env(),
        timeout=120,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("subprocess")
    models = {"subtype": folder / "subtype.npz", "ic50": folder / "ic50.npz"}
    for data, target, ident in ((EXPRESSION, "subtype", "sample_id"), (DRUG, "ic50", "cell_line")):
        done = mlpcli(
            *("train", data, "--target", target, "--id", ident, "--hidden", "16"),
            *("--epochs", "30", "--out", models[target], "--quiet"),
        )
        assert done.returncode == 0, done.stderr
    return {"folder": folder, **models}


def test_train_then_predict_evaluate_inspect(trained: dict[str, Path]) -> None:
    folder, model = trained["folder"], trained["subtype"]
    out = folder / "predictions.tsv.gz"
    done = mlpcli("predict", model, EXPRESSION, "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "Predicted 600 row(s)" in done.stderr
    predictions = pd.read_csv(out, sep="\t")
    assert predictions.shape == (600, 5) and predictions.columns[0] == "sample_id"

    done = mlpcli("predict", model, EXPRESSION)  # stdout, no --out
    assert done.returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(done.stdout)), predictions)
    assert "sample_id" not in done.stderr

    metrics_file = folder / "metrics.json"
    done = mlpcli("evaluate", model, EXPRESSION, "--json", "--out", metrics_file)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert json.loads(metrics_file.read_text()) == document
    assert document["metrics"]["confusion_matrix"]["labels"] == ["basal", "her2", "luminal"]
    assert "balanced_accuracy" in done.stderr and "Per class" in done.stderr

    done = mlpcli("inspect", model)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "Learning curve" in done.stdout
    done = mlpcli("inspect", model, "--json")
    assert done.returncode == 0 and done.stderr == ""
    assert json.loads(done.stdout)["task"] == "multiclass"


def test_regression_predictions_are_in_the_target_units(trained: dict[str, Path]) -> None:
    done = mlpcli("predict", trained["ic50"], DRUG)
    assert done.returncode == 0, done.stderr
    predictions = pd.read_csv(io.StringIO(done.stdout))
    assert list(predictions.columns) == ["cell_line", "prediction"]
    truth = pd.read_csv(DRUG)["ic50"]
    assert abs(predictions["prediction"].mean() - truth.mean()) < truth.std()
    done = mlpcli("evaluate", trained["ic50"], DRUG, "--json")
    assert done.returncode == 0
    document = json.loads(done.stdout)
    assert document["n_missing_target"] == int(truth.isna().sum()) > 0
    assert set(document["metrics"]["average"]) >= {"rmse", "r2", "pearson", "spearman"}
    assert "left out" in done.stderr


def test_missing_column_exits_3_and_leaves_no_file(trained: dict[str, Path]) -> None:
    folder = trained["folder"]
    partial = folder / "partial.csv"
    pd.read_csv(EXPRESSION).drop(columns=["GENE001", "GENE002"]).to_csv(partial, index=False)
    out = folder / "never.csv"
    done = mlpcli("predict", trained["subtype"], partial, "--out", out)
    assert done.returncode == 3
    assert "lacks 2 feature column(s) the model needs: 'GENE001', 'GENE002'" in done.stderr
    assert done.stdout == "" and not out.exists()


def test_a_broken_model_file_exits_4(trained: dict[str, Path]) -> None:
    broken = trained["folder"] / "broken.npz"
    broken.write_bytes(trained["subtype"].read_bytes()[:500])
    for command in ("predict", "evaluate"):
        done = mlpcli(command, broken, EXPRESSION)
        assert done.returncode == 4, done.stderr
        assert done.stderr.startswith(f"Error: '{broken}'")


def test_inspect_does_not_import_pandas(trained: dict[str, Path]) -> None:
    code = (
        "import sys\n"
        "from mlpcli.cli import app\n"
        f"sys.argv = ['mlpcli', 'inspect', {str(trained['subtype'])!r}, '--json']\n"
        "try:\n    app()\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pandas')[:3], file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"
    assert json.loads(done.stdout)["architecture"]["layers"][0]["units"] == 16
