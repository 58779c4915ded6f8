"""pipeline: train (prepare, fit, score), the model file's contents, the side files and the
checkpoints, on the session's small cohort table (60 rows, a few epochs: well under a second)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import two_class_table

from mlpcli import fitting, modelfile, pipeline
from mlpcli.config import Settings, resolve
from mlpcli.errors import DataError, ModelFileError, UsageError
from mlpcli.outputs import sha256_file

FAST = {"hidden": "4", "epochs": 3, "batch_size": 16, "seed": 5}


def settings_of(**extra: object) -> Settings:
    values = {"target": ["status"], "id": ["sample"], "drop": ["patient"], **FAST, **extra}
    return resolve(values)


@pytest.fixture(scope="module")
def outcome(cohort_csv: Path) -> pipeline.TrainOutcome:
    return pipeline.train(str(cohort_csv), settings_of(), command=["mlpcli", "train"])


def test_train_records_its_data_the_split_and_both_sides_metrics(
    outcome: pipeline.TrainOutcome, cohort_csv: Path
) -> None:
    meta = outcome.metadata
    assert meta["task"] == "binary"
    assert meta["provenance"]["inputs"] == [
        {"path": str(cohort_csv), "sha256": sha256_file(cohort_csv)}
    ]
    assert meta["provenance"]["command"] == ["mlpcli", "train"]
    training = meta["training"]
    assert training["epochs_run"] == len(training["history"]) <= 3
    assert training["n_train"] + training["n_valid"] == 60
    assert set(meta["metrics"]) == {"train", "validation"}
    assert meta["feature_columns"] == ["g1", "g2", "g3"]
    sides = outcome.prepared.split["set"].value_counts().to_dict()
    assert sides == {"train": training["n_train"], "valid": training["n_valid"]}
    assert meta["data"]["train"]["n_rows"] == training["n_train"]


def test_history_csv_has_a_row_per_epoch_and_blank_missing_values(
    outcome: pipeline.TrainOutcome,
) -> None:
    text = pipeline.history_csv(outcome.result, "accuracy")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:8] == [
        "epoch", "train_loss", "val_loss", "val_accuracy",
        "lr", "seconds", "improved", "best_epoch",
    ]  # fmt: skip
    assert [int(r[0]) for r in rows[1:]] == list(range(1, outcome.result.epochs_run + 1))
    no_validation = pipeline.train_frame(
        two_class_table(), settings_of(valid_fraction=0.0, epochs=2)
    )
    rows = list(csv.reader(io.StringIO(pipeline.history_csv(no_validation.result, "accuracy"))))
    assert {r[2] for r in rows[1:]} == {""}  # val_loss blank, not "None"


def test_write_outputs_writes_the_model_and_each_side_file(
    outcome: pipeline.TrainOutcome, tmp_path: Path
) -> None:
    paths = {n: str(tmp_path / n) for n in ("m.npz", "metrics.json", "h.csv", "split.csv")}
    written = pipeline.write_outputs(
        outcome, paths["m.npz"], paths["metrics.json"], paths["h.csv"], paths["split.csv"]
    )
    assert written == list(paths.values())
    meta, arrays = modelfile.load_checked(paths["m.npz"])
    assert meta["metrics"] == outcome.metadata["metrics"]
    assert set(arrays) == set(outcome.arrays)
    metrics = json.loads(Path(paths["metrics.json"]).read_text())
    assert metrics["task"] == "binary" and "history" not in metrics["training"]
    split = pd.read_csv(paths["split.csv"])
    assert list(split.columns) == ["sample", "set"] and len(split) == 60


def test_an_interrupted_run_says_so_in_its_model_file(
    outcome: pipeline.TrainOutcome, tmp_path: Path
) -> None:
    out = str(tmp_path / "m.npz")
    pipeline.write_outputs(outcome, out, interrupted=True)
    assert modelfile.read_metadata(out)["training"]["interrupted"] is True
    assert "interrupted" not in outcome.metadata["training"]  # the outcome is left alone


def test_a_checkpoint_restores_the_loop_state(
    outcome: pipeline.TrainOutcome, tmp_path: Path
) -> None:
    settings, prepared = outcome.settings, outcome.prepared
    trainer = fitting.make_trainer(settings, prepared, np.random.default_rng(0))
    ckpt = str(tmp_path / "ckpt.npz")
    pipeline.save_checkpoint(ckpt, trainer, settings, prepared)
    fresh = fitting.make_trainer(settings, prepared, np.random.default_rng(1))
    pipeline.restore_checkpoint(fresh, ckpt, prepared)
    np.testing.assert_array_equal(fresh.net.flat_params, trainer.net.flat_params)


def test_resume_refuses_a_plain_model_and_other_data(
    outcome: pipeline.TrainOutcome, tmp_path: Path
) -> None:
    settings, prepared = outcome.settings, outcome.prepared
    model = str(tmp_path / "m.npz")
    pipeline.write_outputs(outcome, model)
    trainer = fitting.make_trainer(settings, prepared, np.random.default_rng(0))
    with pytest.raises(ModelFileError, match=r"is a model file, not a checkpoint"):
        pipeline.restore_checkpoint(trainer, model, prepared)
    ckpt = str(tmp_path / "ckpt.npz")
    pipeline.save_checkpoint(ckpt, trainer, settings, prepared)
    other = pipeline.train_frame(two_class_table(seed=9), settings).prepared
    with pytest.raises(UsageError, match=r"was made from other data"):
        pipeline.restore_checkpoint(trainer, ckpt, other)


def test_train_frame_checks_the_sample_weights() -> None:
    with pytest.raises(DataError, match=r"sample_weight has 3 value\(s\) for 60 row\(s\)"):
        pipeline.train_frame(two_class_table(), settings_of(), sample_weight=np.ones(3))
