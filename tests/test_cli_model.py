"""`mlpcli predict`, `evaluate` and `inspect` through Typer's CliRunner: output, stderr/stdout
separation, exact error messages and exit codes."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from mlpcli.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXPRESSION = ROOT / "sample_data" / "expression.csv"


pytestmark = pytest.mark.usefixtures("plain_terminal")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small multiclass model on the sample expression table (3 subtypes, 60 genes)."""
    path = tmp_path_factory.mktemp("cli_model") / "model.npz"
    result = CliRunner().invoke(
        app,
        [
            *("train", str(EXPRESSION), "--target", "subtype", "--id", "sample_id"),
            *("--hidden", "16", "--epochs", "25", "--out", str(path), "--quiet"),
        ],
    )
    assert result.exit_code == 0, result.output
    return path


def run(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- predict
def test_predict_writes_csv_to_stdout_and_reports_on_stderr(runner: CliRunner, model: Path) -> None:
    result = run(runner, "predict", model, EXPRESSION)
    assert result.exit_code == 0, result.stderr
    predictions = pd.read_csv(io.StringIO(result.stdout))
    assert list(predictions.columns) == [
        "sample_id",
        "prediction",
        "proba_basal",
        "proba_her2",
        "proba_luminal",
    ]
    assert predictions["sample_id"].tolist() == pd.read_csv(EXPRESSION)["sample_id"].tolist()
    assert f"Predicted 600 row(s) of '{EXPRESSION}' into stdout in" in result.stderr
    assert "sample_id" not in result.stderr


def test_predict_file_equals_stdout_and_compressed_file(
    runner: CliRunner, model: Path, tmp_path: Path
) -> None:
    stdout = run(runner, "predict", model, EXPRESSION, "--out", "-").stdout
    for name, read in (("p.csv", Path.read_text), ("p.csv.gz", _read_gzip)):
        out = tmp_path / name
        result = run(runner, "predict", model, EXPRESSION, "--out", out, "--quiet")
        assert result.exit_code == 0, result.stderr
        assert (result.stdout, result.stderr) == ("", "")
        assert read(out) == stdout


def _read_gzip(path: Path) -> str:
    with gzip.open(path, "rt") as handle:
        return handle.read()


def test_predict_tsv_without_probabilities_and_with_another_id(
    runner: CliRunner, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.tsv"
    result = run(runner, "predict", model, EXPRESSION, "-o", out, "--no-proba", "--id", "batch")
    assert result.exit_code == 0, result.stderr
    assert out.read_text().splitlines()[:2] == ["batch\tprediction", "B1\tbasal"]


def test_predict_reads_a_european_table_with_sep_and_decimal(
    runner: CliRunner, model: Path, tmp_path: Path
) -> None:
    european = tmp_path / "eu.csv"
    pd.read_csv(EXPRESSION).to_csv(european, sep=";", decimal=",", index=False)
    expected = run(runner, "predict", model, EXPRESSION).stdout
    result = run(runner, "predict", model, european, "--sep", ";", "--decimal", ",")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == expected


def test_predict_lists_every_missing_column_and_exits_3(
    runner: CliRunner, model: Path, tmp_path: Path
) -> None:
    partial = tmp_path / "partial.csv"
    pd.read_csv(EXPRESSION).drop(columns=["GENE007", "batch", "GENE060"]).to_csv(
        partial, index=False
    )
    result = run(runner, "predict", model, partial, "--out", tmp_path / "p.csv")
    assert result.exit_code == 3
    assert result.stderr == (
        f"Error: '{partial}' lacks 3 feature column(s) the model needs: 'batch', 'GENE007', "
        "'GENE060'; give a table with the columns of the training table (in any order).\n"
    )
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--threshold", "0.3"], 2, "--threshold applies to binary and multilabel models"),
        (["--out", "p.xlsx"], 2, "--out 'p.xlsx': cannot tell the table format from the name"),
        (["--chunk-size", "0"], 2, "Invalid value for '--chunk-size'"),
        (["--id", "patient"], 3, "--id column(s) 'patient' not found"),
    ],
    ids=["threshold-multiclass", "bad-extension", "chunk-size", "absent-id"],
)
def test_predict_option_errors(
    runner: CliRunner, model: Path, args: list[str], code: int, message: str
) -> None:
    result = run(runner, "predict", model, EXPRESSION, *args)
    assert result.exit_code == code
    assert message in result.stderr
    assert result.stdout == ""


def test_model_file_problems_exit_4(runner: CliRunner, tmp_path: Path) -> None:
    fake = tmp_path / "fake.npz"
    fake.write_text("not a model")
    for command in (["predict"], ["evaluate"]):
        result = run(runner, *command, tmp_path / "absent.npz", EXPRESSION)
        assert result.exit_code == 4
        assert f"Model file '{tmp_path / 'absent.npz'}' does not exist." in result.stderr
    result = run(runner, "inspect", fake)
    assert result.exit_code == 4
    assert result.stderr.startswith(f"Error: '{fake}' is not a")


# --------------------------------------------------------------------------- evaluate
def test_evaluate_shows_tables_on_stderr_only(runner: CliRunner, model: Path) -> None:
    result = run(runner, "evaluate", model, EXPRESSION)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    for text in ("multiclass metrics on 600 row(s)", "balanced_accuracy", "Per class"):
        assert text in result.stderr
    assert "Confusion matrix (rows: true class, columns: predicted)" in result.stderr


def test_evaluate_json_on_stdout_equals_the_out_file(
    runner: CliRunner, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "metrics.json"
    result = run(runner, "evaluate", model, EXPRESSION, "--json", "--out", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == out.read_text()
    document = json.loads(result.stdout)
    assert document["n_evaluated"] == 600 and document["task"] == "multiclass"
    assert 0.0 <= document["metrics"]["accuracy"] <= 1.0
    # The model was trained on EXPRESSION: even --quiet keeps the one warning that says so.
    assert result.stderr.startswith(f"Warning: NOT A TEST: '{EXPRESSION}' is the model's own")
    assert result.stderr.count("\n") == 1


def test_evaluate_counts_rows_without_a_target(
    runner: CliRunner, model: Path, tmp_path: Path
) -> None:
    table = pd.read_csv(EXPRESSION)
    table.loc[:9, "subtype"] = None
    data = tmp_path / "some_missing.csv"
    table.to_csv(data, index=False)
    result = run(runner, "evaluate", model, data, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["n_missing_target"] == 10
    assert f"Warning: '{data}': left out 10 row(s) whose target is missing." in result.stderr
    assert "(10 without a target left out)" in result.stderr


def test_evaluate_refuses_two_documents_on_stdout(runner: CliRunner, model: Path) -> None:
    result = run(runner, "evaluate", model, EXPRESSION, "--json", "--out", "-")
    assert result.exit_code == 2
    assert "--json and --out - both write to stdout" in result.stderr


@pytest.mark.slow
def test_evaluate_plots_into_a_folder(runner: CliRunner, model: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    folder = tmp_path / "plots"
    result = run(runner, "evaluate", model, EXPRESSION, "--plots", folder, "--plot-format", "svg")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion_matrix.svg",
        "precision_recall.svg",
        "roc.svg",
    ]
    assert f"Wrote {folder / 'roc.svg'}" in result.stderr
    bad = run(runner, "evaluate", model, EXPRESSION, "--plots", folder, "--plot-format", "gif")
    assert bad.exit_code == 2
    assert "Unknown image format (--plot-format) 'gif'; choose one of: pdf, png, svg." in bad.stderr


# --------------------------------------------------------------------------- inspect
def test_inspect_shows_the_model_on_stdout(runner: CliRunner, model: Path) -> None:
    result = run(runner, "inspect", model)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    for text in (
        "Architecture",
        "63 -> 16",
        "Optimizer and hyperparameters",
        "Preprocessing (first 20 of 61 columns",
        "one-hot: B1, B2, B3",
        "Training",
        "Learning curve (loss per epoch)",
        "* training loss   o validation loss",
        "Validation metrics (at training time)",
    ):
        assert text in result.stdout, text


def test_inspect_json_and_all_rows(runner: CliRunner, model: Path) -> None:
    result = run(runner, "inspect", model, "--json")
    assert result.exit_code == 0
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document["architecture"]["n_parameters"] == 63 * 16 + 16 + 16 * 3 + 3
    assert len(document["preprocessing"]["features"]) == 61
    every = run(runner, "inspect", model, "--rows", "0")
    assert "GENE060" in every.stdout and "first 20" not in every.stdout


def test_inspect_hides_settings_the_optimizer_and_schedule_do_not_take(
    runner: CliRunner, tiny_model: Path
) -> None:
    """The tiny model is adam with a constant schedule: adam's own hyperparameters are shown,
    momentum (sgd's), eta_plus (rprop's) and the step/plateau schedules' options are not."""
    result = runner.invoke(app, ["inspect", str(tiny_model)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    names = {line.split("│")[1].strip() for line in result.stdout.splitlines() if "│" in line}
    assert {"optimizer", "beta1", "beta2", "lr", "schedule", "patience"} <= names
    assert names.isdisjoint({"momentum", "eta_plus", "lr_step_size", "lr_gamma", "lr_factor"})


def _settings_rows(stdout: str) -> dict[str, str]:
    """name -> value of the two-column tables, the first table's row where names repeat (the
    Training table after the settings repeats batch_size as a count)."""
    rows: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.count("│") == 3:
            rows.setdefault(line.split("│")[1].strip(), line.split("│")[2].strip())
    return rows


def test_inspect_shows_the_settings_as_resolved_in_the_run(
    runner: CliRunner, tiny_model: Path, tmp_path: Path
) -> None:
    """`--batch-size auto` shows the rows per step the run took (the tiny model has more than
    32 training rows), `--init auto` each layer's initialiser; --json carries them under
    "resolved". A file from before the field existed shows the setting as stored."""
    from mlpcli import modelfile

    text = runner.invoke(app, ["inspect", str(tiny_model)], env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    rows = _settings_rows(text.stdout)
    assert rows["batch_size"] == "32 (auto)"
    assert rows["init"] == "he_normal, glorot_uniform (auto)"
    doc = json.loads(runner.invoke(app, ["inspect", str(tiny_model), "--json"]).stdout)
    assert doc["resolved"]["train"]["batch_size"] == doc["training"]["batch_size"] == 32
    assert doc["resolved"]["model"] == {
        "loss": "ce",
        "output_activation": "softmax",
        "init": ["he_normal", "glorot_uniform"],
    }
    assert doc["hyperparameters"]["batch_size"] == "auto"  # the setting as given, unchanged

    meta, arrays = modelfile.load(tiny_model)
    del meta["training"]["batch_size"]
    old = tmp_path / "old.npz"
    modelfile.save(old, arrays, meta)
    rows = _settings_rows(runner.invoke(app, ["inspect", str(old)], env={"COLUMNS": "200"}).stdout)
    assert rows["batch_size"] == "auto"
    doc = json.loads(runner.invoke(app, ["inspect", str(old), "--json"]).stdout)
    assert "batch_size" not in doc["resolved"]["train"]


def test_full_batch_records_the_rows_it_took(runner: CliRunner, tmp_path: Path) -> None:
    """rprop trains on the full batch: `auto` resolves to every training row."""
    out = tmp_path / "rprop.npz"
    result = runner.invoke(
        app,
        [
            *("train", str(EXPRESSION), "--target", "subtype", "--id", "sample_id"),
            *("--optimizer", "rprop", "--epochs", "1", "--hidden", "4", "--out", str(out), "-q"),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(runner.invoke(app, ["inspect", str(out), "--json"]).stdout)
    assert doc["resolved"]["train"]["batch_size"] == doc["training"]["n_train"]
