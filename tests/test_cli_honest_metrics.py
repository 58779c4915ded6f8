"""Issue 12, honest metrics: `evaluate`, `explain` and `report` say loudly when the table they
are given holds the model's own training rows, and never call such metrics a test."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpcli.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXPRESSION = ROOT / "sample_data" / "expression.csv"

pytestmark = pytest.mark.usefixtures("plain_terminal")


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def digests(*paths: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def not_a_test(source: Path | str, what: str, command: str) -> str:
    return (
        f"Warning: NOT A TEST: '{source}' {what}; {command} on it measures how well the model "
        "fits data it was trained on, not how well it generalises. Use held-out rows (train "
        "--split-out lists which rows trained).\n"
    )


OWN_TABLE = "is the model's own training table (same SHA-256)"


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every 5th sample held out (as README does), a model trained on the rest."""
    folder = tmp_path_factory.mktemp("honest")
    lines = EXPRESSION.read_text().splitlines(keepends=True)
    train = folder / "train.csv"
    test = folder / "test.csv"
    train.write_text(lines[0] + "".join(x for i, x in enumerate(lines[1:]) if i % 5))
    test.write_text(lines[0] + "".join(x for i, x in enumerate(lines[1:]) if i % 5 == 0))
    model = folder / "model.npz"
    code, _, stderr = run(
        *("train", train, "--target", "subtype", "--id", "sample_id", "--hidden", "8"),
        *("--epochs", "5", "--out", model, "-q"),
    )
    assert code == 0, stderr
    return {"folder": folder, "train": train, "test": test, "model": model}


def test_evaluate_on_the_training_table_warns_and_records_it(
    split: dict[str, Path], tmp_path: Path
) -> None:
    before = digests(split["model"], split["train"])
    out = tmp_path / "e.json"
    code, _, stderr = run("evaluate", split["model"], split["train"], "--out", out, "-q")
    assert code == 0
    assert stderr == not_a_test(split["train"], OWN_TABLE, "evaluate")
    overlap = json.loads(out.read_text())["data_overlap"]
    assert overlap == {
        "training_data": True,
        "same_table_as": "train",
        "shared_ids": 480,
        "checked_ids": 480,
    }
    assert digests(split["model"], split["train"]) == before


def test_evaluate_on_held_out_rows_is_silent(split: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    code, _, stderr = run("evaluate", split["model"], split["test"], "--out", out, "-q")
    assert code == 0 and stderr == ""
    overlap = json.loads(out.read_text())["data_overlap"]
    assert overlap == {
        "training_data": False,
        "same_table_as": None,
        "shared_ids": 0,
        "checked_ids": 120,
    }


def test_a_table_sharing_training_ids_is_flagged(split: dict[str, Path], tmp_path: Path) -> None:
    """Held-out rows plus 10 training rows, in another file: caught by the IDs, not the hash."""
    mixed = tmp_path / "mixed.csv"
    train_rows = split["train"].read_text().splitlines(keepends=True)[1:11]
    mixed.write_text(split["test"].read_text() + "".join(train_rows))
    code, stdout, stderr = run("evaluate", split["model"], mixed, "--json", "-q")
    assert code == 0
    assert stderr == not_a_test(
        mixed, "shares 10 of the 130 IDs checked with the model's training rows", "evaluate"
    )
    assert json.loads(stdout)["data_overlap"]["shared_ids"] == 10


def test_three_shared_ids_are_not_enough_to_warn(split: dict[str, Path], tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.csv"
    train_rows = split["train"].read_text().splitlines(keepends=True)[1:4]
    mixed.write_text(split["test"].read_text() + "".join(train_rows))
    code, stdout, stderr = run("evaluate", split["model"], mixed, "--json", "-q")
    assert code == 0 and stderr == ""
    assert json.loads(stdout)["data_overlap"]["shared_ids"] == 3


def test_the_validation_file_is_not_a_test_either(split: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        *("train", split["train"], "--target", "subtype", "--id", "sample_id", "--hidden", "4"),
        *("--epochs", "2", "--valid-file", split["test"], "--out", model, "-q"),
    )
    assert code == 0, stderr
    code, _, stderr = run("evaluate", model, split["test"], "-q")
    assert code == 0
    assert stderr == not_a_test(
        split["test"], "is the model's own validation table (same SHA-256)", "evaluate"
    )


def test_models_saved_before_the_check_are_compared_by_their_provenance(
    split: dict[str, Path], tmp_path: Path
) -> None:
    with np.load(split["model"]) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays.pop("__metadata__").tobytes())
    del meta["data"]  # as written by mlpcli before this check
    old = tmp_path / "old.npz"
    with old.open("wb") as fh:
        np.savez(fh, **arrays, __metadata__=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    code, _, stderr = run("evaluate", old, split["train"], "-q")
    assert code == 0
    assert stderr == not_a_test(split["train"], OWN_TABLE, "evaluate")


@pytest.mark.slow
def test_report_on_training_rows_never_says_test_accuracy(
    split: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    before = digests(split["model"], split["train"])
    out = tmp_path / "card.html"
    code, _, stderr = run("report", split["model"], "--data", split["train"], "--out", out, "-q")
    assert code == 0
    assert stderr == not_a_test(split["train"], OWN_TABLE, "report")
    html = out.read_text()
    assert "test accuracy" not in html
    assert "accuracy on training data — not a test" in html
    assert "<th>training data — not a test</th>" in html
    assert "Training data — not a test: plots" in html
    assert digests(split["model"], split["train"]) == before
    held_out = tmp_path / "held_out.html"
    code, _, stderr = run("report", split["model"], "--data", split["test"], "--out", held_out)
    assert code == 0 and "NOT A TEST" not in stderr
    assert "test accuracy" in held_out.read_text()


def test_explain_on_training_rows_warns(split: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "imp.csv"
    code, _, stderr = run(
        "explain", split["model"], split["train"], "--repeats", "1", "--out", out, "-q"
    )
    assert code == 0
    assert stderr == not_a_test(split["train"], OWN_TABLE, "explain")
    code, _, stderr = run(
        "explain", split["model"], split["test"], "--repeats", "1", "--out", out, "-q"
    )
    assert code == 0 and stderr == ""


def test_all_zero_permutation_importance_warns_with_tied_ranks(
    split: dict[str, Path], tmp_path: Path
) -> None:
    """Ten copies of one held-out row: shuffling rows changes nothing, for every feature."""
    lines = split["test"].read_text().splitlines(keepends=True)
    same = tmp_path / "same.csv"
    same.write_text(lines[0] + "".join(lines[1].replace("S0001", f"X{i}") for i in range(10)))
    out = tmp_path / "imp.csv"
    code, _, stderr = run("explain", split["model"], same, "--repeats", "2", "--out", out, "-q")
    assert code == 0
    assert stderr == (
        "Warning: Permutation importance is exactly 0 for every feature: shuffling no feature "
        "changed the accuracy on these 10 rows (a metric plateau, or correlated features "
        "standing in for each other), so all features share rank 1. Try --metric log_loss, "
        "which sees every change in the predicted probabilities.\n"
    )
    table = pd.read_csv(out)
    assert (table["importance"] == 0).all() and (table["rank"] == 1).all()


def test_a_target_whose_spread_is_rounding_is_warned_about(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(60)
    frame = pd.DataFrame({"a": a, "b": rng.standard_normal(60), "y": 1e6 + 0.3 * a})
    data = tmp_path / "tiny.csv"
    frame.to_csv(data, index=False)
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--target", "y", "--epochs", "2", "--out", model, "-q")
    assert code == 0
    assert stderr == (
        "Warning: Target 'y' varies by less than 1e-06 of its mean: its R² and standardisation "
        "are dominated by rounding; subtract a reference value from it (or rescale it) first.\n"
    )
    code, _, stderr = run("evaluate", model, data)
    assert code == 0 and "Note: R² is meaningless for target(s) 'y'" in stderr


def test_the_id_sketch_kept_a_batch_at_a_time_is_the_sketch_of_every_id() -> None:
    from mlpcli import overlap

    ids = [f"s{i}" for i in range(3 * overlap.SKETCH_SIZE)] + ["s7", "s7"]  # repeats count once
    every = sorted({overlap.id_hash(i) for i in ids})[: overlap.SKETCH_SIZE]
    assert overlap.smallest_hashes(iter(ids), batch=999) == every
    assert overlap.smallest_hashes(ids[:50]) == sorted({overlap.id_hash(i) for i in ids[:50]})
    assert overlap.smallest_hashes([]) == []
