"""Real tables in: the cases where mlpcli used to refuse a table that scikit-learn and pandas
accept. Each now goes on with one warning naming the column, what was found and the option that
changes the decision, and `--strict` turns that warning into an error (exit 3).

Every table is generated here; the tests assert the exact warning or error text, the exit code
and the model's input columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpcli import modelfile
from mlpcli.cli import app
from mlpcli.trained import load_trained

pytestmark = pytest.mark.usefixtures("plain_terminal")

FAST = ("--epochs", "2", "--hidden", "4", "-q")


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


NO_VALIDATION = "No validation rows: early stopping watches train_loss instead of val_loss."


def warnings_in(stderr: str) -> list[str]:
    """The warnings on stderr, without the one every `--valid-fraction 0` run gives."""
    lines = [line.removeprefix("Warning: ") for line in stderr.splitlines()]
    shown = [line for line, raw in zip(lines, stderr.splitlines(), strict=True) if raw != line]
    return [line for line in shown if line != NO_VALIDATION]


def errors_in(stderr: str) -> list[str]:
    return [line[len("Error: ") :] for line in stderr.splitlines() if line.startswith("Error: ")]


def model_columns(path: Path) -> list[str]:
    """The network's input columns as stored in the model file."""
    meta = modelfile.read_metadata(path)
    out: list[str] = []
    for column in meta["preprocessing"]["columns"]:
        if column["kind"] == "categorical":
            out += [f"{column['name']}={level}" for level in column["levels"]]
        elif column["kind"] == "frequency":
            out.append(f"{column['name']} (frequency)")
        else:
            out.append(column["name"])
    return out


def measurements(n: int, seed: int = 0) -> pd.DataFrame:
    """Two numeric measurements and a binary status that depends on them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).round(3)
    return pd.DataFrame(
        {"x1": x[:, 0], "x2": x[:, 1], "status": np.where(x[:, 0] > x[:, 1], "case", "ctrl")}
    )


# --- 76 clinics -------------------------------------------------------------------------------


def clinics_csv(path: Path) -> Path:
    """392 patients from 76 clinics: 30 with 10 patients each and 46 with 2 each."""
    names = [f"Clinic {i:02d}" for i in range(1, 77)]
    clinic = [n for n in names[:30] for _ in range(10)] + [n for n in names[30:] for _ in range(2)]
    frame = measurements(len(clinic))
    frame.insert(0, "clinic", clinic)
    frame.to_csv(path, index=False)
    return path


def test_76_level_column_trains_with_rare_levels_pooled(tmp_path: Path) -> None:
    data = clinics_csv(tmp_path / "clinics.csv")
    model, split = tmp_path / "m.npz", tmp_path / "split.csv"
    code, _, stderr = run(
        "train", data, "--target", "status", *FAST, "--out", model, "--split-out", split
    )
    assert code == 0, stderr
    # Pooling is fitted on the training rows: count each clinic there.
    frame = pd.read_csv(data)
    train = frame[pd.read_csv(split)["set"].to_numpy() == "train"]
    counts = train["clinic"].value_counts()
    rare = sorted(counts[counts < 5].index, key=lambda c: (-counts[c], c))
    assert len(rare) >= 40  # the 46 two-patient clinics, and none of the big ones
    assert warnings_in(stderr) == [
        f"Categorical column 'clinic' has {len(counts)} levels; {len(rare)} seen in fewer than "
        f"5 rows (--min-level-count) are pooled into one level '__other__' "
        f"({int(counts[rare].sum())} rows, e.g. '{rare[0]}' in {counts[rare[0]]})."
    ]
    kept = sorted(set(counts.index) - set(rare))
    assert model_columns(model) == [f"clinic={c}" for c in kept] + [
        "clinic=__other__",
        "x1",
        "x2",
    ]


def sites_csv(path: Path) -> Path:
    """536 samples from 76 sites, each seen often enough to keep: 40 with 8, 36 with 6."""
    names = [f"site{i:02d}" for i in range(76)]
    sites = [n for i, n in enumerate(names) for _ in range(8 if i < 40 else 6)]
    frame = measurements(len(sites))
    frame.insert(0, "site", sites)
    frame.to_csv(path, index=False)
    return path


def test_76_frequent_levels_are_frequency_encoded(tmp_path: Path) -> None:
    data = sites_csv(tmp_path / "sites.csv")
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--valid-fraction", "0", *FAST, "--out", model
    )
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        "Categorical column 'site' has 76 levels, more than --max-levels 50, so it is "
        "frequency-encoded: one column holding each level's share of the training rows (0 for a "
        "level not seen in training). Pass --high-cardinality onehot to one-hot the most "
        "frequent levels instead, or raise --max-levels."
    ]
    assert model_columns(model) == ["site (frequency)", "x1", "x2"]
    column = modelfile.read_metadata(model)["preprocessing"]["columns"][0]
    assert column["levels"] == [f"site{i:02d}" for i in range(76)]
    assert column["counts"] == [8] * 40 + [6] * 36
    code, stdout, _ = run("inspect", model)
    assert code == 0 and "frequency: site00, site01" in stdout

    # predict on raw new rows: known sites get their training share, unseen ones 0.
    new = measurements(4, seed=3)
    new.insert(0, "site", ["site00", "site75", "site99", "nowhere"])
    new.to_csv(tmp_path / "new.csv", index=False)
    code, stdout, stderr = run("predict", model, tmp_path / "new.csv")
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        "Column 'site': 2 row(s) have levels not seen in training ('nowhere', 'site99'); they "
        "are encoded as all zeros."
    ]
    assert len(stdout.splitlines()) == 5
    X = load_trained(model).transform(pd.read_csv(tmp_path / "new.csv"))
    np.testing.assert_allclose(X[:, 0], [8 / 536, 6 / 536, 0, 0], rtol=1e-6)


def test_frequency_encoding_is_an_error_under_strict(tmp_path: Path) -> None:
    data = sites_csv(tmp_path / "sites.csv")
    code, _, stderr = run(
        "train", data, "--target", "status", "--valid-fraction", "0", "--strict", *FAST,
        "--out", tmp_path / "m.npz",
    )  # fmt: skip
    assert code == 3
    assert errors_in(stderr) == [
        "Categorical column 'site' has 76 levels, more than --max-levels 50, so it is "
        "frequency-encoded: one column holding each level's share of the training rows (0 for a "
        "level not seen in training). Pass --high-cardinality onehot to one-hot the most "
        "frequent levels instead, or raise --max-levels. (This is an error because of --strict.)"
    ]
    assert not (tmp_path / "m.npz").exists()


def test_high_cardinality_onehot_pools_the_least_frequent(tmp_path: Path) -> None:
    data = sites_csv(tmp_path / "sites.csv")
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--valid-fraction", "0",
        "--high-cardinality", "onehot", *FAST, "--out", model,
    )  # fmt: skip
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        "Categorical column 'site' has 76 levels; 27 beyond the 49 most frequent "
        "(--max-levels 50) are pooled into one level '__other__' (162 rows, e.g. 'site49' in 6)."
    ]
    names = [f"site{i:02d}" for i in range(49)]
    assert model_columns(model)[:50] == [f"site={n}" for n in names] + ["site=__other__"]


def test_76_level_column_is_an_error_under_strict(tmp_path: Path) -> None:
    data = clinics_csv(tmp_path / "clinics.csv")
    code, _, stderr = run(
        "train", data, "--target", "status", "--valid-fraction", "0", "--strict", *FAST,
        "--out", tmp_path / "m.npz",
    )  # fmt: skip
    assert code == 3
    assert errors_in(stderr) == [
        "Categorical column 'clinic' has 76 levels; 46 seen in fewer than 5 rows "
        "(--min-level-count) are pooled into one level '__other__' (92 rows, e.g. 'Clinic 31' "
        "in 2). (This is an error because of --strict.)"
    ]
    assert not (tmp_path / "m.npz").exists()


def test_min_level_count_1_keeps_every_level(tmp_path: Path) -> None:
    data = clinics_csv(tmp_path / "clinics.csv")
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--valid-fraction", "0",
        "--min-level-count", "1", "--max-levels", "100", *FAST, "--out", model,
    )  # fmt: skip
    assert code == 0 and warnings_in(stderr) == []
    assert len(model_columns(model)) == 76 + 2


# --- grades 9, 10, 11, 12, other --------------------------------------------------------------


def grades_csv(path: Path) -> Path:
    """400 students, grade 9-12 except 12 rows (from data row 388) graded 'other'."""
    frame = measurements(400)
    grade = [str(9 + i % 4) for i in range(400)]
    grade[387:399] = ["other"] * 12
    frame.insert(0, "grade", grade)
    frame.to_csv(path, index=False)
    return path


def grades_warning(path: Path) -> str:
    return (
        f"Column 'grade' in '{path}' is mostly numeric but 12 of its 400 values are not numbers "
        "('other' x12; first in data row 388), so it is read as categorical. If 'other' marks "
        "a missing value, add it with --na-values other (the list replaces the default "
        "tokens); or pass --numeric grade to read such cells as missing."
    )


def test_mostly_numeric_column_is_categorical_with_a_warning(tmp_path: Path) -> None:
    data = grades_csv(tmp_path / "grades.csv")
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--target", "status", *FAST, "--out", model)
    assert code == 0, stderr
    assert warnings_in(stderr) == [grades_warning(data)]
    assert model_columns(model) == [
        *("grade=10", "grade=11", "grade=12", "grade=9", "grade=other"),
        *("x1", "x2"),
    ]


def test_numeric_option_reads_the_tokens_as_missing(tmp_path: Path) -> None:
    data = grades_csv(tmp_path / "grades.csv")
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--numeric", "grade", *FAST, "--out", model
    )
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"Column 'grade' in '{data}' (--numeric): 12 cell(s) that are not numbers read as "
        "missing ('other' x12)."
    ]
    assert model_columns(model) == ["grade", "x1", "x2"]
    # predict applies the same reading to new tables.
    code, stdout, stderr = run("predict", model, data, "--no-proba")
    assert code == 0, stderr
    assert len(stdout.splitlines()) == 401


def test_mostly_numeric_column_is_an_error_under_strict(tmp_path: Path) -> None:
    data = grades_csv(tmp_path / "grades.csv")
    code, _, stderr = run(
        "train", data, "--target", "status", "--strict", *FAST, "--out", tmp_path / "m.npz"
    )
    assert code == 3
    assert errors_in(stderr) == [grades_warning(data) + " (This is an error because of --strict.)"]


# --- repeated IDs -----------------------------------------------------------------------------


def visits_csv(path: Path) -> Path:
    """100 patients with 4 visits each: the ID repeats."""
    frame = measurements(400)
    frame.insert(0, "patient_id", [f"P{i // 4:03d}" for i in range(400)])
    frame.to_csv(path, index=False)
    return path


def test_repeated_ids_train_with_a_warning_and_reach_the_predictions(tmp_path: Path) -> None:
    data = visits_csv(tmp_path / "visits.csv")
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--id", "patient_id", *FAST, "--out", model
    )
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"{data}: ID column(s) patient_id repeat 100 value(s) in 400 rows, e.g. 'P000' in data "
        "rows 1 and 2; they are carried into predictions as they are. If rows with one ID "
        "belong together (one patient), pass --group patient_id so they stay on one side of "
        "the split."
    ]
    assert model_columns(model) == ["x1", "x2"]
    code, stdout, _ = run("predict", model, data, "--no-proba")
    assert code == 0
    assert [line.split(",")[0] for line in stdout.splitlines()[1:6]] == [
        *("P000", "P000", "P000", "P000", "P001")
    ]


def test_repeated_ids_with_group_warn_without_the_advice(tmp_path: Path) -> None:
    data = visits_csv(tmp_path / "visits.csv")
    code, _, stderr = run(
        "train", data, "--target", "status", "--id", "patient_id", "--group", "patient_id",
        *FAST, "--out", tmp_path / "m.npz",
    )  # fmt: skip
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"{data}: ID column(s) patient_id repeat 100 value(s) in 400 rows, e.g. 'P000' in data "
        "rows 1 and 2; they are carried into predictions as they are."
    ]


def test_repeated_ids_are_an_error_under_strict(tmp_path: Path) -> None:
    data = visits_csv(tmp_path / "visits.csv")
    code, _, stderr = run(
        "train", data, "--target", "status", "--id", "patient_id", "--strict", *FAST,
        "--out", tmp_path / "m.npz",
    )  # fmt: skip
    assert code == 3
    assert len(errors_in(stderr)) == 1
    assert errors_in(stderr)[0].endswith(
        "pass --group patient_id so they stay on one side of the split. (This is an error "
        "because of --strict.)"
    )


# --- layouts: R row names, the --transpose corner --------------------------------------------


def test_r_write_csv_row_names_are_the_row_id(tmp_path: Path) -> None:
    frame = measurements(60)
    data = tmp_path / "r.csv"
    frame.set_axis([str(i + 1) for i in range(60)]).to_csv(data, quoting=2)  # R quotes all
    assert data.read_text().startswith('"","x1","x2","status"\n"1",')
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--target", "status", "--epochs", "2", "--out", model)
    assert code == 0, stderr
    assert f"'{data}': the first column has no header (R row names); it is the row ID " in stderr
    assert "Unnamed" not in stderr
    assert modelfile.read_metadata(model)["id_columns"] == ["row_name"]
    assert model_columns(model) == ["x1", "x2"]
    code, stdout, _ = run("predict", model, data, "--no-proba")
    assert code == 0
    assert stdout.splitlines()[:2] == ["row_name,prediction", "1," + stdout.splitlines()[1][2:]]


def test_r_write_table_header_one_field_short(tmp_path: Path) -> None:
    frame = measurements(60)
    data = tmp_path / "r.tsv"
    lines = ["x1\tx2\tstatus"] + [
        f"S{i}\t{r.x1}\t{r.x2}\t{r.status}" for i, r in enumerate(frame.itertuples())
    ]
    data.write_text("\n".join(lines) + "\n")
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--target", "status", *FAST, "--out", model)
    assert code == 0, stderr
    assert modelfile.read_metadata(model)["id_columns"] == ["row_name"]
    assert model_columns(model) == ["x1", "x2"]
    code, stdout, _ = run("predict", model, data, "--no-proba")
    assert [line.split(",")[0] for line in stdout.splitlines()[:3]] == ["row_name", "S0", "S1"]


def test_transpose_corner_column_is_the_sample_id(tmp_path: Path) -> None:
    frame = measurements(40)
    samples = [f"S{i:02d}" for i in range(40)]
    data = tmp_path / "genes.csv"
    rows = [
        "gene," + ",".join(samples),
        "status," + ",".join(frame["status"]),
        "G1," + ",".join(map(str, frame["x1"])),
        "G2," + ",".join(map(str, frame["x2"])),
    ]
    data.write_text("\n".join(rows) + "\n")
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--transpose", "--target", "status", *FAST, "--out", model)
    assert code == 0, stderr
    assert warnings_in(stderr) == []
    assert modelfile.read_metadata(model)["id_columns"] == ["gene"]
    assert model_columns(model) == ["G1", "G2"]


# --- classes ----------------------------------------------------------------------------------


def test_class_with_one_sample_trains_with_a_warning(tmp_path: Path) -> None:
    frame = measurements(61)
    frame["status"] = ["a"] * 30 + ["b"] * 30 + ["c"]
    frame.to_csv(tmp_path / "d.csv", index=False)
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", tmp_path / "d.csv", "--target", "status", *FAST, "--out", model)
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        "1 class(es) have a single sample ('c'), so that sample trains and the class is not "
        "validated; give a separate --valid-file or more samples to validate it."
    ]
    assert modelfile.read_metadata(model)["target"]["labels"] == ["a", "b", "c"]
    code, _, stderr = run(
        "train", tmp_path / "d.csv", "--target", "status", "--strict", *FAST, "--out", model
    )
    assert code == 3 and errors_in(stderr)[0].startswith("1 class(es) have a single sample")


def test_more_classes_than_sqrt_n_asks_if_it_is_a_label(tmp_path: Path) -> None:
    frame = measurements(120)
    frame["status"] = [f"L{i % 30:02d}" for i in range(120)]
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    code, _, stderr = run("train", data, "--target", "status", *FAST, "--out", tmp_path / "m")
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"{data}: the target has 30 classes in 120 rows (more than the square root of the row "
        "count, 11.0); is it really a label? For a numeric quantity pass --task regression."
    ]


def test_positive_class_and_sensitivity_specificity(tmp_path: Path) -> None:
    import json

    data = tmp_path / "d.csv"
    measurements(200).to_csv(data, index=False)
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--target", "status", "--epochs", "5", "--out", model)
    assert code == 0
    assert "Positive class: 'ctrl' (change it with --positive-class)." in stderr
    code, _, stderr = run(
        "train", data, "--target", "status", "--positive-class", "case", "--epochs", "5",
        "--out", model,
    )  # fmt: skip
    assert code == 0
    assert "Positive class: 'case' (--positive-class)." in stderr
    assert modelfile.read_metadata(model)["target"]["labels"] == ["ctrl", "case"]
    code, stdout, stderr = run("evaluate", model, data, "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    metrics = report.get("metrics", report)
    assert metrics["positive_class"] == "case"
    assert metrics["sensitivity"] == metrics["per_class"]["case"]["recall"]
    assert metrics["specificity"] == metrics["per_class"]["ctrl"]["recall"]
    code, _, stderr = run("evaluate", model, data)
    assert "sensitivity" in stderr and "specificity" in stderr
    code, _, stderr = run(
        "train", data, "--target", "status", "--positive-class", "cases", *FAST, "--out", model
    )
    assert code == 2
    assert errors_in(stderr) == ["--positive-class got 'cases'; choose one of: case, ctrl."]


# --- columns: empty, numeric IDs, thousands, NAN tokens ---------------------------------------


def test_all_missing_columns_in_one_warning_and_dropped(tmp_path: Path) -> None:
    frame = measurements(60).assign(e1=np.nan, e2=np.nan, e3=np.nan)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--target", "status", *FAST, "--out", model)
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"3 column(s) in '{data}' are entirely missing and are left out: 'e1', 'e2', 'e3'."
    ]
    assert model_columns(model) == ["x1", "x2"]


def test_numeric_patient_id_is_left_out(tmp_path: Path) -> None:
    frame = measurements(400)
    frame.insert(0, "patient_id", np.random.default_rng(1).permutation(400) + 1001)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--target", "status", *FAST, "--out", model)
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"Column 'patient_id' in '{data}' looks like a numeric sample ID (400 distinct integers "
        "in 400 rows), so it is not used as a feature; pass --id patient_id to carry it into "
        "predictions, or --numeric patient_id to use it as a feature."
    ]
    assert model_columns(model) == ["x1", "x2"]
    code, _, stderr = run(
        "train", data, "--target", "status", "--numeric", "patient_id", *FAST, "--out", model
    )
    assert code == 0 and warnings_in(stderr) == []
    assert model_columns(model) == ["patient_id", "x1", "x2"]


def test_thousands_separators_are_detected_and_read_with_thousands(tmp_path: Path) -> None:
    frame = measurements(300)
    reads = np.random.default_rng(2).integers(200, 90_000, size=300)
    frame.insert(0, "reads", [f"{v:,}" for v in reads])
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    row = int(np.flatnonzero(reads >= 1000)[0]) + 1
    code, _, stderr = run("train", data, "--target", "status", *FAST, "--out", tmp_path / "m")
    assert code == 0, stderr
    assert warnings_in(stderr)[0] == (
        f"Column 'reads' in '{data}' holds numbers with a thousands separator "
        f"('{reads[row - 1]:,}' in data row {row}), so it is read as categorical; pass "
        "--thousands , to read them as numbers."
    )
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--thousands", ",", *FAST, "--out", model
    )
    assert code == 0 and warnings_in(stderr) == []
    assert model_columns(model) == ["reads", "x1", "x2"]


def test_nan_tokens_are_named_instead_of_a_silent_one_hot_column(tmp_path: Path) -> None:
    frame = measurements(400)
    conc = [f"{0.5 * (i % 21):.1f}" for i in range(400)]
    for i in (10, 50, 90, 130, 170):
        conc[i] = "NAN"
    frame.insert(0, "conc", conc)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    code, _, stderr = run("train", data, "--target", "status", *FAST, "--out", tmp_path / "m")
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"Column 'conc' in '{data}' is mostly numeric but 5 of its 400 values are not numbers "
        "('NAN' x5; first in data row 11), so it is read as categorical. If 'NAN' marks a "
        "missing value, add it with --na-values NAN (the list replaces the default tokens); or "
        "pass --numeric conc to read such cells as missing."
    ]
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--na-values", "", "--na-values", "NAN", *FAST,
        "--out", model,
    )  # fmt: skip
    assert code == 0 and warnings_in(stderr) == []
    assert model_columns(model) == ["conc", "x1", "x2"]


def test_predict_suggests_only_options_it_has(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    measurements(60).to_csv(data, index=False)
    model = tmp_path / "m.npz"
    assert run("train", data, "--target", "status", *FAST, "--out", model)[0] == 0
    bad = measurements(5).astype({"x1": object})
    bad.loc[2, "x1"] = "oops"
    bad.to_csv(tmp_path / "new.csv", index=False)
    for command in ("predict", "evaluate"):
        code, _, stderr = run(command, model, tmp_path / "new.csv")
        assert code == 3
        assert errors_in(stderr) == [
            "Column 'x1' must be numeric but holds 'oops' (1 non-numeric value(s) in all; first "
            "in data row 3); blank those cells (missing values are imputed as in training) or "
            "replace them with numbers."
        ]


# --- all problems of one kind in one message --------------------------------------------------


def test_unparseable_columns_are_named_in_one_warning_per_check(tmp_path: Path) -> None:
    frame = measurements(400)
    grade = [str(9 + i % 4) for i in range(400)]
    grade[387:399] = ["other"] * 12
    conc = [f"{0.5 * (i % 21):.1f}" for i in range(400)]
    for i in (10, 50, 90, 130, 170):
        conc[i] = "NAN"
    reads = [f"{1000 + 7 * (i % 10):,}" for i in range(400)]
    depth = [f"{500 * (i % 8):,}" for i in range(400)]
    frame = frame.assign(grade=grade, conc=conc, reads=reads, depth=depth)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--target", "status", *FAST, "--out", model)
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"2 columns in '{data}' hold numbers with a thousands separator ('reads': 400 of 400, "
        "e.g. '1,000' in data row 1; 'depth': 300 of 400, e.g. '1,000' in data row 3), so "
        "they are read as categorical; pass --thousands , to read them as numbers.",
        f"2 columns in '{data}' are mostly numeric but hold values that are not numbers "
        "('grade': 12 of 400 ('other' x12; first in data row 388); 'conc': 5 of 400 ('NAN' x5; "
        "first in data row 11)), so they are read as categorical. If those tokens mark missing "
        "values, add them with --na-values other --na-values NAN (the list replaces the default "
        "tokens); or pass --numeric grade --numeric conc to read such cells as missing.",
    ]
    code, _, stderr = run(
        "train", data, "--target", "status", "--strict", *FAST, "--out", tmp_path / "s.npz"
    )
    assert code == 3 and len(errors_in(stderr)) == 1
    assert errors_in(stderr)[0].startswith("2 columns in ")
    assert "'reads': 400 of 400" in stderr and "'depth': 300 of 400" in stderr
    assert not (tmp_path / "s.npz").exists()


def test_decimal_comma_columns_are_named_in_one_error(tmp_path: Path) -> None:
    frame = measurements(30).assign(
        conc=[f"{i},5" for i in range(30)], dose=[f"0,{i + 1}" for i in range(30)]
    )
    data = tmp_path / "d.tsv"
    frame.to_csv(data, sep="\t", index=False)
    code, _, stderr = run("train", data, "--target", "status", *FAST, "--out", tmp_path / "m")
    assert code == 3
    assert errors_in(stderr) == [
        f"2 columns in '{data}' hold numbers with a decimal comma ('conc': 30 of 30, e.g. '0,5' "
        "in data row 1; 'dose': 30 of 30, e.g. '0,1' in data row 1); pass --decimal , (or "
        "--categorical conc --categorical dose to keep them as text)."
    ]


def test_predict_names_every_column_that_holds_text_in_one_error(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    measurements(60).to_csv(data, index=False)
    model = tmp_path / "m.npz"
    assert run("train", data, "--target", "status", *FAST, "--out", model)[0] == 0
    bad = measurements(5).astype({"x1": object, "x2": object})
    bad.loc[2, "x1"] = "oops"
    bad.loc[[1, 4], "x2"] = "n/d"
    bad.to_csv(tmp_path / "new.csv", index=False)
    for command in ("predict", "evaluate"):
        code, _, stderr = run(command, model, tmp_path / "new.csv")
        assert code == 3
        assert errors_in(stderr) == [
            "2 columns must be numeric but hold other values: 'x1' holds 'oops' (1 non-numeric "
            "value(s) in all; first in data row 3); 'x2' holds 'n/d' (2 non-numeric value(s) in "
            "all; first in data row 2); blank those cells (missing values are imputed as in "
            "training) or replace them with numbers."
        ]


# --- wide data: --top-variance, --features-file -----------------------------------------------


def wide_csv(path: Path) -> Path:
    """60 samples x 200 genes; gene g_i has standard deviation 1 + i/10, plus a batch column."""
    rng = np.random.default_rng(5)
    scale = 1 + np.arange(200) / 10
    X = rng.normal(size=(60, 200)) * scale
    frame = pd.DataFrame(X.round(4), columns=[f"g{i:03d}" for i in range(200)])
    frame.insert(0, "batch", ["b1", "b2", "b3"] * 20)
    frame["status"] = np.where(X[:, 199] > 0, "case", "ctrl")
    frame.to_csv(path, index=False)
    return path


def test_top_variance_keeps_the_most_variable_training_features(tmp_path: Path) -> None:
    data = wide_csv(tmp_path / "wide.csv")
    model, split = tmp_path / "m.npz", tmp_path / "split.csv"
    code, _, stderr = run(
        "train", data, "--target", "status", "--top-variance", "10", "--epochs", "2",
        "--out", model, "--split-out", split,
    )  # fmt: skip
    assert code == 0, stderr
    frame = pd.read_csv(data)
    train = frame[pd.read_csv(split)["set"].to_numpy() == "train"]
    genes = [c for c in frame.columns if c.startswith("g")]
    variance = train[genes].var(ddof=0).sort_values(ascending=False, kind="stable")
    top = sorted(variance.index[:10])
    assert model_columns(model) == ["batch=b1", "batch=b2", "batch=b3", *top]
    assert (
        f"--top-variance 10: kept the 10 most variable of 200 numeric features (variance "
        f"{variance.iloc[9]:.3g} to {variance.iloc[0]:.3g} on the training rows)." in stderr
    )
    code, stdout, stderr = run("predict", model, data, "--no-proba")  # the model needs only those
    assert code == 0 and len(stdout.splitlines()) == 61


def test_features_file_names_the_columns_and_counts_the_unknown(tmp_path: Path) -> None:
    data = wide_csv(tmp_path / "wide.csv")
    names = tmp_path / "genes.txt"
    names.write_text("# curated panel\ng005\ng150  # a comment\n\ng042\nGENE_X\nGENE_Y\n")
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--features-file", names, *FAST, "--out", model
    )
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"2 of the 5 names in --features-file '{names}' are not columns of '{data}' and are "
        "skipped: 'GENE_X', 'GENE_Y'."
    ]
    assert model_columns(model) == ["g005", "g042", "g150"]
    code, _, stderr = run(
        "train", data, "--target", "status", "--features-file", names, "--strict", *FAST,
        "--out", model,
    )  # fmt: skip
    assert code == 3 and errors_in(stderr)[0].startswith("2 of the 5 names in --features-file")


# --- layout in predict, evaluate, explain -----------------------------------------------------


def test_a_transposed_table_is_named_and_read_with_transpose(tmp_path: Path) -> None:
    frame = measurements(40)
    frame.insert(0, "sample", [f"S{i:02d}" for i in range(40)])
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--id", "sample", *FAST, "--out", model
    )
    assert code == 0, stderr
    genes = tmp_path / "genes.csv"  # the same samples as a features x samples matrix
    frame.set_index("sample").T.rename_axis("sample").to_csv(genes)
    hint = (
        " Its first column holds 2 of the model's 2 feature names, so the table looks transposed "
        "(features as rows); pass --transpose."
    )
    advice = "give a table with the columns of the training table (in any order)."
    for command, lacks in (
        ("predict", "2 feature column(s) the model needs: 'x1', 'x2'"),
        ("explain", "2 feature column(s) the model needs: 'x1', 'x2'"),
        ("evaluate", "1 target column(s) the model needs: 'status'"),
    ):
        code, _, stderr = run(command, model, genes)
        assert code == 3, (command, stderr)
        assert errors_in(stderr) == [f"'{genes}' lacks {lacks}; {advice}{hint}"], command
    code, stdout, stderr = run("predict", model, genes, "--transpose", "--no-proba")
    assert code == 0, stderr
    expected = run("predict", model, data, "--no-proba")[1]
    assert stdout == expected
    code, _, stderr = run("evaluate", model, genes, "--transpose")
    assert code == 0, stderr


# --- sample sheets: --labels FILE --on COL ----------------------------------------------------


def test_labels_sheet_is_joined_by_id_and_unmatched_ids_are_named(tmp_path: Path) -> None:
    import json

    frame = measurements(80)
    frame.insert(0, "sample", [f"S{i:02d}" for i in range(80)])
    features = tmp_path / "expr.csv"
    frame.drop(columns="status").iloc[:78].to_csv(features, index=False)  # S78, S79 absent
    sheet = frame[["sample", "status"]].iloc[3:].assign(patient=[f"P{i // 2}" for i in range(77)])
    labels = tmp_path / "samples.tsv"
    sheet.to_csv(labels, sep="\t", index=False)  # S00-S02 unlabelled
    model, metrics = tmp_path / "m.npz", tmp_path / "m.json"
    code, _, stderr = run(
        "train", features, "--labels", labels, "--on", "sample", "--id", "sample",
        "--target", "status", "--group", "patient", *FAST, "--out", model,
        "--metrics-out", metrics,
    )  # fmt: skip
    assert code == 0, stderr
    assert warnings_in(stderr) == [
        f"--labels '{labels}' joined on 'sample': 3 of 78 rows of '{features}' have no entry "
        "(e.g. 'S00'); 2 of 77 IDs of the sheet have no row in the data (e.g. 'S78').",
        f"{features}: dropped 3 row(s) whose target is missing.",
    ]
    assert model_columns(model) == ["x1", "x2"]
    inputs = json.loads(metrics.read_text())["provenance"]["inputs"]
    assert [entry["path"] for entry in inputs] == [str(features), str(labels)]


def test_labels_sheet_with_a_repeated_id_is_refused(tmp_path: Path) -> None:
    frame = measurements(20)
    frame.insert(0, "sample", [f"S{i:02d}" for i in range(20)])
    frame.drop(columns="status").to_csv(tmp_path / "x.csv", index=False)
    sheet = frame[["sample", "status"]]
    pd.concat([sheet, sheet.iloc[:1]]).to_csv(tmp_path / "y.csv", index=False)
    code, _, stderr = run(
        "train", tmp_path / "x.csv", "--labels", tmp_path / "y.csv", "--on", "sample",
        "--target", "status", *FAST, "--out", tmp_path / "m.npz",
    )  # fmt: skip
    assert code == 3
    assert errors_in(stderr) == [
        f"'{tmp_path / 'y.csv'}': the --on column 'sample' repeats 'S00'; a sample sheet needs "
        "one row per ID."
    ]


# --- mlpcli split -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cohort.csv", "cohort.tsv.gz", "cohort.parquet"])
def test_split_writes_train_and_test_in_the_input_format(tmp_path: Path, name: str) -> None:
    frame = measurements(100)
    frame.insert(0, "patient", [f"P{i // 4:02d}" for i in range(100)])
    frame["x1"] = [f"{v:.6f}" for v in frame["x1"]]  # six decimals must survive as written
    data = tmp_path / name
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
        frame.to_parquet(data)
    else:
        frame.to_csv(data, sep="\t" if ".tsv" in name else ",", index=False)
    out = tmp_path / "out"
    out.mkdir()
    code, _, stderr = run(
        "split", data, "--test-fraction", "0.25", "--group", "patient", "--seed", "1",
        "--out-dir", out,
    )  # fmt: skip
    assert code == 0, stderr
    suffix = name.partition(".")[2]
    train, test = out / f"cohort.train.{suffix}", out / f"cohort.test.{suffix}"
    # Groups of 4 rows: 6 patients (24 rows) are closest to a quarter of 100.
    assert f"Wrote 76 training row(s) to {train}, 24 test row(s) to {test}" in stderr
    read = (
        pd.read_parquet
        if suffix == "parquet"
        else lambda p: pd.read_csv(p, sep="\t" if ".tsv" in name else ",", dtype={"x1": str})
    )
    a, b = read(train), read(test)
    assert set(a["patient"]).isdisjoint(b["patient"])
    assert sorted([*a["x1"], *b["x1"]]) == sorted(frame["x1"])
    listing = pd.read_csv(out / "cohort.split.csv")
    assert list(listing.columns) == ["row", "patient", "set"]
    assert (listing["set"] == "test").sum() == 24
    code, _, stderr = run("train", train, "--target", "status", *FAST, "--out", tmp_path / "m")
    assert code == 0, stderr


def test_split_stratify_is_a_flag_on_the_target(tmp_path: Path) -> None:
    """20 cases and 80 controls: a quarter stratified on --target holds 5 and 20. The form
    that took the column (--stratify status) and the flag alone are one-line usage errors."""
    data = tmp_path / "cohort.csv"
    frame = measurements(100).assign(status=["case"] * 20 + ["ctrl"] * 80)
    frame.to_csv(data, index=False)
    split = ("split", data, "--test-fraction", "0.25", "--out-dir", tmp_path)
    code, _, stderr = run(*split, "--stratify", "--target", "status")
    assert code == 0, stderr
    test = pd.read_csv(tmp_path / "cohort.test.csv")
    assert test["status"].value_counts().to_dict() == {"ctrl": 20, "case": 5}
    for args, message in (
        (
            ("--stratify", "status"),
            "--stratify is a flag and takes no column; name the target with --target COL "
            "(e.g. --stratify --target subtype).",
        ),
        (("--stratify",), "--stratify needs --target COL: the column whose classes both keep."),
        (
            ("--target", "status"),
            "--target is the column --stratify uses; add --stratify or drop --target.",
        ),
        (("--stratify", "--target", "grade"), f"--target column 'grade' not found in '{data}'."),
    ):
        code, _, stderr = run(*split, *args)
        assert (code, errors_in(stderr)) == (2 if "grade" not in args else 3, [message]), args


def test_train_test_file_reports_test_metrics_apart_from_validation(tmp_path: Path) -> None:
    import json

    data = tmp_path / "cohort.csv"
    measurements(200).to_csv(data, index=False)
    assert run("split", data, "--test-fraction", "0.25", "--stratify", "--target", "status",
               "--out-dir", tmp_path)[0] == 0  # fmt: skip
    model, metrics = tmp_path / "m.npz", tmp_path / "m.json"
    code, _, stderr = run(
        "train", tmp_path / "cohort.train.csv", "--target", "status", "--epochs", "5",
        "--test-file", tmp_path / "cohort.test.csv", "--out", model, "--metrics-out", metrics,
        "--no-baselines",  # the summary rows checked below are the network's only
    )  # fmt: skip
    assert code == 0, stderr
    document = json.loads(metrics.read_text())
    assert sorted(document["metrics"]) == ["test", "train", "validation"]
    assert document["metrics"]["test"]["n_samples"] == 50
    assert document["metrics"]["validation"]["n_samples"] == 30
    inputs = [entry["path"] for entry in document["provenance"]["inputs"]]
    assert inputs == [str(tmp_path / "cohort.train.csv"), str(tmp_path / "cohort.test.csv")]
    summary = [line for line in stderr.splitlines() if line.startswith("│") and "accuracy" in line]
    assert [line.split("│")[1].strip() for line in summary if "balanced" not in line] == [
        "validation accuracy",
        "test accuracy",
        "train accuracy",
    ]
    # The test metrics are those evaluate computes on the same table.
    code, stdout, _ = run("evaluate", model, tmp_path / "cohort.test.csv", "--json")
    evaluated = json.loads(stdout)
    assert evaluated["metrics"]["accuracy"] == document["metrics"]["test"]["accuracy"]
