"""`mlpcli.predicting`: streaming predictions, evaluation on raw tables, model descriptions, and
the chunked table reader they stand on."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpcli import (
    config,
    describe,
    metric_reports,
    modelfile,
    outputs,
    pipeline,
    predicting,
    trained,
)
from mlpcli.data import TableChunks, cache, read_table, write
from mlpcli.errors import DataError, ModelFileError, UsageError
from mlpcli.nn.network import MLP
from mlpcli.predicting import PredictOptions
from mlpcli.preprocessing import Preprocessor
from mlpcli.target_encoding import TargetEncoder

N_ROWS = 2500  # three chunks of 1,024 rows (the forward block)
EPOCHS = 3  # the predictions are compared with the trained model's own, never scored
FEATURES = ["f1", "f2", "f3", "batch"]
TARGETS: dict[str, list[str]] = {
    "multiclass": ["kind"],
    "binary": ["status"],
    "regression": ["y1", "y2"],
    "multilabel": ["m1", "m2"],
}
ALL_TARGETS = [t for names in TARGETS.values() for t in names]


def make_frame(n: int = N_ROWS, seed: int = 5) -> pd.DataFrame:
    """Three numeric features (f2 with missing cells), a categorical `batch`, 40 noise genes (so
    matrix products are long enough for BLAS's summation order to matter), zero-padded text IDs,
    and targets of every task driven by f1 and f3."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 3))
    frame = pd.DataFrame({"sample": [f"{i:05d}" for i in range(n)]})
    frame["f1"], frame["f2"], frame["f3"] = Z[:, 0], 10 + 3 * Z[:, 1], Z[:, 2]
    frame.loc[rng.random(n) < 0.1, "f2"] = np.nan
    frame["batch"] = rng.choice(["b1", "b2", "b3"], size=n)
    genes = pd.DataFrame(
        rng.lognormal(3, 1, size=(n, 40)), columns=[f"g{j:02d}" for j in range(40)]
    )
    frame = pd.concat([frame, genes], axis=1)
    frame["kind"] = np.select([Z[:, 0] > 0.5, Z[:, 2] > 0], ["alpha", "beta"], "gamma")
    frame["status"] = np.where(Z[:, 0] - Z[:, 2] > 0, "case", "control")
    frame["y1"] = 2 * Z[:, 0] - Z[:, 2] + 0.1 * rng.normal(size=n)
    frame["y2"] = 100 + 5 * Z[:, 2]
    frame["m1"] = (Z[:, 0] > 0).astype(int)
    frame["m2"] = (Z[:, 2] > 0.3).astype(int)
    return frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> Path:
    folder = tmp_path_factory.mktemp("predicting")
    frame.to_csv(folder / "data.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def read_frame(data_folder: Path) -> pd.DataFrame:
    """The table as `predict` reads it: numbers as float32, IDs as text."""
    frame = read_table(data_folder / "data.csv").frame
    return frame.assign(sample=frame["sample"].map("{:05d}".format))


@pytest.fixture(scope="module")
def folder(data_folder: Path, outcomes: dict[str, pipeline.TrainOutcome]) -> Path:
    """data.csv and one model file per task: <task>.npz."""
    return data_folder


@pytest.fixture(scope="module")
def outcomes(data_folder: Path) -> dict[str, pipeline.TrainOutcome]:
    """One model per task, trained in memory and saved next to the data."""
    result = {}
    for task, targets in TARGETS.items():
        values = {
            "target": targets,
            "id": ["sample"],
            "drop": [t for t in ALL_TARGETS if t not in targets],
            "hidden": "16",
            "epochs": EPOCHS,
            "seed": 1,
        }
        outcome = pipeline.train(str(data_folder / "data.csv"), config.resolve(values))
        pipeline.write_outputs(outcome, str(data_folder / f"{task}.npz"))
        result[task] = outcome
    return result


@pytest.fixture(scope="module")
def models(
    folder: Path, outcomes: dict[str, pipeline.TrainOutcome]
) -> dict[str, trained.TrainedModel]:
    return {task: trained.load_trained(folder / f"{task}.npz") for task in outcomes}


def read_csv_text(text: str, sep: str = ",") -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), sep=sep, dtype={"sample": str})


# --------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("task", list(TARGETS))
def test_model_loaded_from_disk_predicts_exactly_like_the_trained_one(
    task: str,
    frame: pd.DataFrame,
    outcomes: dict[str, pipeline.TrainOutcome],
    models: dict[str, trained.TrainedModel],
) -> None:
    outcome = outcomes[task]
    in_memory = trained.TrainedModel(
        outcome.net,
        outcome.prepared.preprocessor,
        outcome.prepared.target_encoder,
        outcome.metadata,
    )
    expected = predicting.predict_frame(in_memory, frame)
    got = predicting.predict_frame(models[task], frame)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert np.array_equal(in_memory.predict_outputs(frame), models[task].predict_outputs(frame))


@pytest.mark.parametrize(
    "chunk_size, n_chunks",
    [(1, 3), (1024, 3), (2000, 2), (None, 1)],  # rounded up to whole 1,024-row blocks
    ids=["1", "1024", "2000", "default"],
)
def test_chunked_prediction_equals_one_shot_to_the_last_digit(
    chunk_size: int | None, n_chunks: int, folder: Path, read_frame: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "pred.csv"
    summary = predicting.predict_file(
        folder / "multiclass.npz",
        str(folder / "data.csv"),
        str(out),
        PredictOptions(chunk_size=chunk_size),
    )
    one_shot = predicting.predict_frame(folder / "multiclass.npz", read_frame)
    assert out.read_text() == write.csv_text(one_shot)
    assert summary.n_rows == N_ROWS
    assert summary.n_chunks == n_chunks


def test_block_forward_matches_the_network_up_to_float32_rounding(
    frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    model = models["multiclass"]
    got = trained.forward(model, frame)
    np.testing.assert_allclose(got, model.predict_outputs(frame), rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- raw tables
def test_shuffled_column_order_gives_the_same_predictions(
    frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    model = models["binary"]
    shuffled = frame[list(np.random.default_rng(0).permutation(frame.columns))]
    assert list(shuffled.columns) != list(frame.columns)
    pd.testing.assert_frame_equal(
        predicting.predict_frame(model, shuffled), predicting.predict_frame(model, frame)
    )


def test_extra_columns_are_ignored(
    frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    model = models["binary"]
    extra = frame.assign(notes="free text", GENE999=1.5)
    pd.testing.assert_frame_equal(
        predicting.predict_frame(model, extra), predicting.predict_frame(model, frame)
    )


def test_missing_feature_columns_are_all_listed_with_the_file(
    folder: Path, frame: pd.DataFrame, tmp_path: Path
) -> None:
    data = tmp_path / "partial.csv"
    frame.drop(columns=["f1", "batch"]).to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    with pytest.raises(DataError) as caught:
        predicting.predict_file(folder / "binary.npz", str(data), str(out))
    message = str(caught.value)
    assert f"'{data}' lacks 2 feature column(s) the model needs: 'f1', 'batch';" in message
    assert not out.exists() and list(tmp_path.iterdir()) == [data]


def test_unseen_category_is_encoded_as_zeros_with_one_warning_for_all_chunks(
    folder: Path, frame: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    changed = frame.copy()
    changed.loc[[3, 1500, 2400], "batch"] = ["b9", "b9", "b7"]  # in three different chunks
    data = tmp_path / "unseen.csv"
    changed.to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        predicting.predict_file(
            folder / "binary.npz", str(data), str(out), PredictOptions(chunk_size=1024)
        )
    warnings = [r.getMessage() for r in caplog.records if "not seen in training" in r.getMessage()]
    assert warnings == [
        "Column 'batch': 3 row(s) have levels not seen in training ('b9', 'b7'); "
        "they are encoded as all zeros."
    ]
    assert len(pd.read_csv(out)) == N_ROWS


def test_missing_values_are_imputed_as_in_training(
    frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    model = models["regression"]
    (median,) = [r["impute_value"] for r in model.preprocessor.describe() if r["column"] == "f2"]
    rows = frame.head(5).copy()
    rows["f2"] = np.nan
    filled = rows.assign(f2=median)
    got = predicting.predict_frame(model, rows)
    assert got["prediction_y1"].notna().all()
    pd.testing.assert_frame_equal(got, predicting.predict_frame(model, filled))


def test_output_columns_for_each_task(
    frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    head = frame.head(50)
    columns = {task: list(predicting.predict_frame(m, head).columns) for task, m in models.items()}
    assert columns == {
        "multiclass": ["sample", "prediction", "proba_alpha", "proba_beta", "proba_gamma"],
        "binary": ["sample", "prediction", "proba_case", "proba_control"],
        "regression": ["sample", "prediction_y1", "prediction_y2"],
        "multilabel": ["sample", "prediction_m1", "prediction_m2", "proba_m1", "proba_m2"],
    }
    no_proba = predicting.predict_frame(models["binary"], head, PredictOptions(proba=False))
    assert list(no_proba.columns) == ["sample", "prediction"]


@pytest.mark.parametrize(
    "dtype", ["str", "string[pyarrow]", "string[python]", "object", "category", "int64"]
)
def test_id_columns_keep_the_values_and_dtype_a_numpy_copy_gives(
    frame: pd.DataFrame, models: dict[str, trained.TrainedModel], dtype: str
) -> None:
    """The arrow-backed `str` column is passed through without a NumPy round trip: the output
    must still be what the round trip gives, value for value and dtype for dtype."""
    head = frame.head(50).copy()
    samples = head["sample"].astype("int64") if dtype == "int64" else head["sample"].astype(dtype)
    if dtype == "str":  # in two arrow chunks, as a table read in batches holds it
        samples = pd.concat([samples.iloc[:20], samples.iloc[20:]])
    head["sample"] = samples
    got = predicting.prediction_frame(models["binary"], head, ids=["sample"])
    expected = pd.DataFrame({"sample": head["sample"].to_numpy()})["sample"]
    assert got["sample"].dtype == expected.dtype
    assert got["sample"].tolist() == expected.tolist()
    assert write.csv_text(got) == write.csv_text(got.assign(sample=expected.to_numpy()))


def test_labels_probabilities_and_units_are_the_original_ones(
    frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    head = frame.head(200)
    multi = predicting.predict_frame(models["multiclass"], head)
    proba = multi[["proba_alpha", "proba_beta", "proba_gamma"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    labels = np.array(["alpha", "beta", "gamma"])
    assert (multi["prediction"].to_numpy() == labels[proba.argmax(axis=1)]).all()
    assert (multi["sample"] == head["sample"]).all()  # input order, IDs as text ("00007")
    binary = predicting.predict_frame(models["binary"], head)
    assert set(binary["prediction"]) <= {"case", "control"}
    np.testing.assert_allclose(binary["proba_case"] + binary["proba_control"], 1.0, rtol=1e-6)
    regression = predicting.predict_frame(models["regression"], head)
    assert abs(regression["prediction_y2"].mean() - 100) < 5  # original units, not z-scores
    multilabel = predicting.predict_frame(models["multilabel"], head)
    assert set(multilabel["prediction_m1"]) <= {"0", "1"}
    on = (multilabel["proba_m2"] >= 0.5).map({True: "1", False: "0"})
    assert (multilabel["prediction_m2"] == on).all()


@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_threshold_moves_the_decision(
    task: str, frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    model = models[task]
    head = frame.head(300)
    low = predicting.predict_frame(model, head, PredictOptions(threshold=0.0))
    high = predicting.predict_frame(model, head, PredictOptions(threshold=1.0))
    column = "prediction" if task == "binary" else "prediction_m1"
    positive = "control" if task == "binary" else "1"  # binary: P(labels[1])
    proba = "proba_control" if task == "binary" else "proba_m1"
    assert (low[column] == positive).all()
    assert (high[column] == positive).sum() == (high[proba] >= 1.0).sum()


def test_threshold_is_refused_for_multiclass_and_out_of_range(
    frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    with pytest.raises(UsageError, match="--threshold applies to binary and multilabel models"):
        predicting.predict_frame(models["multiclass"], frame, PredictOptions(threshold=0.3))
    with pytest.raises(UsageError, match=r"--threshold must lie in \[0, 1\], got 1.5"):
        predicting.predict_frame(models["binary"], frame, PredictOptions(threshold=1.5))


def test_absent_stored_id_falls_back_to_row_numbers_with_a_warning(
    folder: Path, frame: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "anonymous.csv"
    frame.drop(columns=["sample"]).to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        predicting.predict_file(
            folder / "binary.npz", str(data), str(out), PredictOptions(chunk_size=1024)
        )
    written = pd.read_csv(out)
    assert written.columns[0] == "row"
    assert written["row"].tolist() == list(range(1, N_ROWS + 1))
    assert "has no ID column 'sample'" in caplog.text


def test_id_given_now_replaces_the_stored_one_and_must_exist(
    frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    got = predicting.predict_frame(models["binary"], frame.head(3), PredictOptions(ids=("kind",)))
    assert got.columns[0] == "kind" and got["kind"].tolist() == frame["kind"].head(3).tolist()
    with pytest.raises(DataError, match="--id column\\(s\\) 'patient' not found"):
        predicting.predict_frame(models["binary"], frame, PredictOptions(ids=("patient",)))


# --------------------------------------------------------------------------- output files
@pytest.mark.parametrize(
    "name, sep, opener",
    [
        ("p.csv", ",", open),
        ("p.tsv", "\t", open),
        ("p.txt", "\t", open),
        ("p.csv.gz", ",", gzip.open),
        ("p.tsv.bz2", "\t", __import__("bz2").open),
        ("p.csv.xz", ",", __import__("lzma").open),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_output_format_follows_the_extension(
    name: str, sep: str, opener: Any, folder: Path, read_frame: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / name
    predicting.predict_file(folder / "multiclass.npz", str(folder / "data.csv"), str(out))
    with opener(out, "rt") as handle:
        text = handle.read()
    expected = predicting.predict_frame(folder / "multiclass.npz", read_frame)
    assert text == write.csv_text(expected, sep)


def test_stdout_output_equals_the_file(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.csv"
    predicting.predict_file(folder / "binary.npz", str(folder / "data.csv"), str(out))
    capsys.readouterr()
    predicting.predict_file(folder / "binary.npz", str(folder / "data.csv"), "-")
    assert capsys.readouterr().out == out.read_text()


@pytest.mark.parametrize("name", ["p.xlsx", "p.gz", "p"])
def test_unknown_output_format_is_refused_before_reading(
    name: str, folder: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match=f"--out '.*{name}': cannot tell the table format"):
        predicting.predict_file(
            folder / "binary.npz", str(tmp_path / "absent.csv"), str(tmp_path / name)
        )


def test_a_bad_value_in_a_later_chunk_leaves_no_partial_file(
    folder: Path, frame: pd.DataFrame, tmp_path: Path
) -> None:
    broken = frame.astype({"f3": object})
    broken.loc[2300, "f3"] = "oops"
    data = tmp_path / "broken.csv"
    broken.to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    with pytest.raises(DataError, match="'f3' must be numeric but holds 'oops'"):
        predicting.predict_file(
            folder / "binary.npz", str(data), str(out), PredictOptions(chunk_size=1024)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.csv"]


def test_text_ids_parsed_in_several_pieces_are_written_as_read(
    folder: Path, tmp_path: Path
) -> None:
    """pandas parses a chunk of a few MB in pieces, so its `str` ID column holds several arrow
    chunks, which the output keeps (a crash once, on files of a few MB or more)."""
    frame = make_frame(20_000, seed=8)  # 17 MB: parsed in two pieces
    data = tmp_path / "big.csv"
    frame.to_csv(data, index=False)
    with TableChunks(data, 25_600, text_columns=["sample"]) as table:
        ids = next(iter(table))["sample"].array
    assert getattr(ids, "_pa_array", None) is None or ids._pa_array.num_chunks > 1
    out = tmp_path / "pred.csv"
    predicting.predict_file(folder / "binary.npz", str(data), str(out), PredictOptions())
    written = pd.read_csv(out, dtype={"sample": str})
    assert written["sample"].tolist() == frame["sample"].tolist()


# --------------------------------------------------------------------------- the table cache
@pytest.fixture
def cache_root(tmp_path: Path) -> Iterator[Path]:
    """A table cache of its own, on for the test, off again after it."""
    root = tmp_path / "cache"
    before = cache.active_root()
    cache.use(root)
    yield root
    cache.use(before)


def settled_copy(source: Path, target: Path) -> Path:
    """A copy old enough for the cache to record its stat (files changed in the last 2 s are
    not: the racy window)."""
    target.write_bytes(source.read_bytes())
    past = time.time() - 10
    os.utime(target, (past, past))
    return target


def never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was parsed although the table cache holds it")

    monkeypatch.setattr("mlpcli.data.TableChunks", fail)


def predicted(model: Path, data: Path, out: Path, **options: Any) -> str:
    summary = predicting.predict_file(model, str(data), str(out), PredictOptions(**options))
    assert summary.n_rows == N_ROWS
    return out.read_text()


@pytest.mark.parametrize("task", list(TARGETS))
def test_a_second_predict_reads_what_the_first_stored_with_the_same_bytes(
    task: str, folder: Path, tmp_path: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = settled_copy(folder / "data.csv", tmp_path / "data.csv")
    model = folder / f"{task}.npz"
    first = predicted(model, data, tmp_path / "1.csv", chunk_size=1000)
    assert len(list((cache_root / cache.ENTRIES).iterdir())) == 1
    with monkeypatch.context() as patched:
        never_parsed(patched)
        second = predicted(model, data, tmp_path / "2.csv", chunk_size=1000)
        other_chunks = predicted(model, data, tmp_path / "3.csv")
    cache.use(None)
    assert first == second == other_chunks == predicted(model, data, tmp_path / "4.csv")
    assert "\n00007," in first  # the IDs stay text through the cache


@pytest.mark.parametrize("arrow_reader", [False, True], ids=["blocks", "pyarrow"])
def test_predict_reads_the_entry_train_stored(
    folder: Path,
    tmp_path: Path,
    cache_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    arrow_reader: bool,
) -> None:
    """Whichever reader train parsed the file with (pyarrow's for large files), the entry it
    stored predicts the bytes a parsing predict writes."""
    from mlpcli import prepare
    from mlpcli.data import arrow

    if arrow_reader and arrow.modules() is None:
        pytest.skip("pyarrow is not installed")
    parsed: list[object] = []
    parse_csv = arrow.parse_csv
    monkeypatch.setattr(arrow, "READ_CSV", arrow_reader)
    monkeypatch.setattr(arrow, "parse_csv", lambda *a: parsed.append(a) or parse_csv(*a))
    data = settled_copy(folder / "data.csv", tmp_path / "data.csv")
    model = folder / "multiclass.npz"
    settings = predicting.model_settings(trained.load_trained(model), None, None, None, str(data))
    prepare.read(str(data), settings)  # train's reading: the whole table into the cache
    assert bool(parsed) == arrow_reader
    with monkeypatch.context() as patched:
        never_parsed(patched)
        cached = predicted(model, data, tmp_path / "1.csv", chunk_size=1024)
    cache.use(None)
    assert cached == predicted(model, data, tmp_path / "2.csv")
    assert len(list((cache_root / cache.ENTRIES).iterdir())) == 1  # predict stored nothing


def test_an_entry_holding_an_id_column_as_numbers_is_not_used_for_it(
    folder: Path, tmp_path: Path, cache_root: Path
) -> None:
    """`--id y1` reads y1 as text, as written in the file; train's entry holds it as float32."""
    from mlpcli import prepare

    data = settled_copy(folder / "data.csv", tmp_path / "data.csv")
    model = folder / "multiclass.npz"
    settings = predicting.model_settings(trained.load_trained(model), None, None, None, str(data))
    prepare.read(str(data), settings)
    cached = predicted(model, data, tmp_path / "1.csv", ids=("y1",))
    cache.use(None)
    assert cached == predicted(model, data, tmp_path / "2.csv", ids=("y1",))
    assert len(list((cache_root / cache.ENTRIES).iterdir())) == 2  # predict parsed and stored


def test_a_predict_that_fails_stores_nothing(
    folder: Path, frame: pd.DataFrame, tmp_path: Path, cache_root: Path
) -> None:
    broken = frame.astype({"f3": object})
    broken.loc[2300, "f3"] = "oops"
    data = tmp_path / "broken.csv"
    broken.to_csv(data, index=False)
    settled_copy(data, data)
    with pytest.raises(DataError, match="'f3' must be numeric but holds 'oops'"):
        predicted(folder / "binary.npz", data, tmp_path / "p.csv", chunk_size=1024)
    assert list((cache_root / cache.ENTRIES).iterdir()) == []


def test_a_streamed_table_with_too_many_text_values_is_not_stored(
    folder: Path, tmp_path: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each distinct ID is kept until the entry is committed: past the limit, nothing is
    stored, so predict's memory stays flat on a file of any length."""
    monkeypatch.setattr(cache, "MAX_STREAMED_LEVELS", 1500)  # 2,500 distinct IDs
    data = settled_copy(folder / "data.csv", tmp_path / "data.csv")
    out = predicted(folder / "multiclass.npz", data, tmp_path / "1.csv", chunk_size=1024)
    assert [p for p in (cache_root / cache.ENTRIES).iterdir()] == []
    cache.use(None)
    assert out == predicted(folder / "multiclass.npz", data, tmp_path / "2.csv")


def test_entry_rows_are_read_not_mapped(folder: Path, tmp_path: Path, cache_root: Path) -> None:
    """Streamed rows come from plain reads: pages of a memory map would stay resident, so a
    long table's predict would grow with it."""
    data = settled_copy(folder / "data.csv", tmp_path / "data.csv")
    read_table(data, text_columns=["sample"])
    (folder_of_entry,) = (cache_root / cache.ENTRIES).iterdir()
    meta = json.loads((folder_of_entry / cache.META_FILE).read_text())
    entry = cache.lookup_sha(cache_root, meta["sha256"], meta["options"])
    assert entry is not None
    rows = entry.rows(1000, 1100, ["f1", "g00", "sample"])
    whole = entry.frame()
    assert rows.index.tolist() == list(range(1000, 1100))
    pd.testing.assert_frame_equal(rows, whole.loc[1000:1099, ["sample", "f1", "g00"]])
    assert not np.shares_memory(rows["f1"].to_numpy(), entry.numeric)


# --------------------------------------------------------------------------- evaluate
def hand_model(path: Path) -> Path:
    """A binary model whose probability is sigmoid(x) exactly: one input, no hidden layer,
    W = 1, b = 0, no scaling; saved like `train` saves."""
    train = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": ["neg", "pos", "neg", "pos"]})
    pre = Preprocessor(scale="none").fit(train, ["x"])
    encoder = TargetEncoder().fit(train, ["y"], "binary")
    net = MLP(n_inputs=1, hidden_layer_sizes=(), n_outputs=1, loss="bce", seed=0)
    net.parameters()[0][...] = 1.0
    net.parameters()[1][...] = 0.0
    pre_meta, pre_arrays = pre.to_state()
    target_meta, target_arrays = encoder.to_state()
    metadata = {
        "mlpcli_version": "test",
        "task": "binary",
        "architecture": net.architecture.to_dict(),
        "preprocessing": pre_meta,
        "target": target_meta,
        "id_columns": [],
        "settings": {},
        "training": {},
        "metrics": {},
    }
    arrays = {f"net.{k}": v for k, v in net.state_arrays().items()} | pre_arrays | target_arrays
    modelfile.save(path, arrays, metadata)
    return path


def logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture
def hand_case(tmp_path: Path) -> tuple[Path, Path]:
    """Probabilities 0.9, 0.8, 0.8 (a tie across classes), 0.3, 0.2 for truths
    pos, pos, neg, pos, neg, and one row without a target."""
    model = hand_model(tmp_path / "hand.npz")
    p = [0.9, 0.8, 0.8, 0.3, 0.2, 0.5]
    table = pd.DataFrame(
        {"x": [logit(v) for v in p], "y": ["pos", "pos", "neg", "pos", "neg", None]}
    )
    data = tmp_path / "hand.csv"
    table.to_csv(data, index=False)
    return model, data


def test_evaluate_matches_hand_computed_binary_metrics(
    hand_case: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    model, data = hand_case
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        doc = predicting.evaluate_file(model, str(data))
    assert "left out 1 row(s) whose target is missing" in caplog.text
    assert (doc["n_rows"], doc["n_evaluated"], doc["n_missing_target"]) == (6, 5, 1)
    m = doc["metrics"]
    # predicted pos/pos/pos/neg/neg: TP 2, FP 1, FN 1, TN 1
    assert m["confusion_matrix"] == {"labels": ["neg", "pos"], "matrix": [[1, 1], [1, 2]]}
    expected = {
        "accuracy": 3 / 5,
        "balanced_accuracy": (1 / 2 + 2 / 3) / 2,
        "mcc": (2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2),
        # positive-negative pairs ordered right: 0.9>0.8, 0.9>0.2, 0.8=0.8 (half), 0.8>0.2,
        # 0.3<0.8, 0.3>0.2
        "roc_auc": 4.5 / 6,
        "log_loss": -np.mean(np.log([0.9, 0.8, 0.2, 0.3, 0.8])),
        "brier": (0.1**2 + 0.2**2 + 0.8**2 + 0.7**2 + 0.2**2) / 5,
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, rel=1e-5), key
    assert m["per_class"]["pos"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert m["macro_avg"]["f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_evaluate_threshold_and_a_class_never_predicted(hand_case: tuple[Path, Path]) -> None:
    model, data = hand_case
    doc = predicting.evaluate_file(model, str(data), threshold=0.95)
    m = doc["metrics"]
    assert doc["threshold"] == 0.95
    assert m["confusion_matrix"]["matrix"] == [[2, 0], [3, 0]]
    assert m["per_class"]["pos"]["precision"] == 0.0
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["roc_auc"] == pytest.approx(4.5 / 6)  # ranking metrics ignore the threshold
    assert any("'pos' are never predicted" in note for note in m["notes"])


@pytest.mark.parametrize("task", list(TARGETS))
def test_evaluate_equals_the_metric_functions_on_the_same_arrays(
    task: str, folder: Path, read_frame: pd.DataFrame, models: dict[str, trained.TrainedModel]
) -> None:
    model = models[task]
    doc = predicting.evaluate_file(folder / f"{task}.npz", str(folder / "data.csv"))
    P = trained.forward(model, read_frame)
    encoder = model.encoder
    if task == "regression":
        # float64 in C order, as evaluate reads the targets: sums then add up in one order
        y = np.ascontiguousarray(read_frame[TARGETS[task]].to_numpy(np.float64))
        expected = metric_reports.regression_report(y, encoder.decode(P), encoder.targets)
    elif task == "multilabel":
        expected = metric_reports.multilabel_report(
            read_frame[TARGETS[task]].to_numpy(), P, encoder.labels
        )
    else:
        y = encoder.encode(read_frame)[0]
        proba = np.column_stack([1 - P[:, 0], P[:, 0]]) if task == "binary" else P
        expected = metric_reports.classification_report(y, proba, encoder.labels)
    assert doc["metrics"] == expected
    assert doc["task"] == task and doc["n_evaluated"] == N_ROWS


def test_evaluate_names_every_unknown_label_across_chunks(
    folder: Path, frame: pd.DataFrame, tmp_path: Path
) -> None:
    changed = frame.copy()
    changed.loc[[10, 2400], "kind"] = ["delta", "omega"]
    data = tmp_path / "labels.csv"
    changed.to_csv(data, index=False)
    with pytest.raises(DataError) as caught:
        predicting.evaluate_file(folder / "multiclass.npz", str(data), chunk_size=1024)
    assert str(caught.value) == (
        f"'{data}': target 'kind' has label(s) the model was not trained on: 'delta', 'omega'; "
        "the model knows 'alpha', 'beta', 'gamma'."
    )


def test_evaluate_needs_the_target_column(
    folder: Path, frame: pd.DataFrame, tmp_path: Path
) -> None:
    data = tmp_path / "no_target.csv"
    frame.drop(columns=["y2"]).to_csv(data, index=False)
    with pytest.raises(DataError, match="lacks 1 target column\\(s\\) the model needs: 'y2'"):
        predicting.evaluate_file(folder / "regression.npz", str(data))


def test_evaluate_document_is_json_with_checksums(folder: Path) -> None:
    model, data = folder / "binary.npz", folder / "data.csv"
    doc = predicting.evaluate_file(model, str(data), command=["mlpcli", "evaluate"])
    text = outputs.to_json(doc)
    assert json.loads(text) == doc
    assert list(doc) == [
        "model", "preset", "data", "task", "targets", "labels", "threshold", "n_rows",
        "n_evaluated", "n_missing_target", "metrics", "data_overlap", "provenance",
    ]  # fmt: skip
    assert doc["preset"] == "classic"  # the suite's MLPCLI_PRESET
    # The model was trained on this very table: the document says so.
    assert doc["data_overlap"]["training_data"] and doc["data_overlap"]["same_table_as"] == "train"
    inputs = {i["path"]: i["sha256"] for i in doc["provenance"]["inputs"]}
    assert inputs == {
        str(model): hashlib.sha256(model.read_bytes()).hexdigest(),
        str(data): hashlib.sha256(data.read_bytes()).hexdigest(),
    }
    assert doc["provenance"]["command"] == ["mlpcli", "evaluate"]


# --------------------------------------------------------------------------- inspect
@pytest.mark.parametrize("task", list(TARGETS))
def test_describe_model_reads_everything_from_metadata(
    task: str, folder: Path, models: dict[str, trained.TrainedModel]
) -> None:
    doc = describe.describe_model(folder / f"{task}.npz")
    model = models[task]
    arch = doc["architecture"]
    assert [layer["n_parameters"] for layer in arch["layers"]] == model.net.n_parameters()
    assert arch["n_parameters"] == sum(model.net.n_parameters())
    assert [(layer["inputs"], layer["units"]) for layer in arch["layers"]] == [
        (model.net.architecture.n_inputs, 16),
        (16, model.encoder.n_outputs),
    ]
    described = [
        {k: v for k, v in record.items() if k != "outputs"}
        for record in model.preprocessor.describe()
    ]
    assert doc["preprocessing"]["features"] == described  # imputation values and scaling
    assert doc["target"]["labels"] == model.encoder.labels
    assert doc["training"]["epochs_run"] == len(doc["history"]) > 0
    assert (
        doc["training"]["inputs"][0]["sha256"]
        == hashlib.sha256((folder / "data.csv").read_bytes()).hexdigest()
    )
    assert doc["optimizer"]["name"] == "adam" and doc["hyperparameters"]["epochs"] == EPOCHS
    assert "validation" in doc["metrics"]
    json.loads(outputs.to_json(doc))


def test_describe_model_refuses_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError):
        describe.describe_model(bad)


# --------------------------------------------------------------------------- chunked reader
def test_table_chunks_equal_read_table_and_its_checksum(folder: Path, tmp_path: Path) -> None:
    source = folder / "data.csv"
    packed = tmp_path / "data.csv.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    whole = read_table(packed)
    with TableChunks(packed, 1000) as table:
        chunks = list(table)
        digest = table.sha256()
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert chunks[2].index[0] == 2000
    pd.testing.assert_frame_equal(pd.concat(chunks), whole.frame)
    assert digest == whole.sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()


def test_table_chunks_keep_text_columns_and_skip_unused_ones(folder: Path) -> None:
    with TableChunks(
        folder / "data.csv", 100, text_columns=["sample"], usecols=["sample", "f1"]
    ) as t:
        first = next(iter(t))
    assert list(first.columns) == ["sample", "f1"]
    assert first["sample"].iloc[7] == "00007"


@pytest.mark.parametrize("used", [["a", "b", "c", "d"], ["a"]], ids=["few-skipped", "most-skipped"])
def test_table_chunks_refuse_extra_fields_whether_unused_columns_are_parsed_or_skipped(
    tmp_path: Path, used: list[str]
) -> None:
    # One skipped column of five is parsed and dropped (pandas counts the fields); four of
    # five are skipped by pandas, and the fields are counted as the bytes pass.
    rows = "a,b,c,d,y\n" + "1,2,3,4,x\n" * 30
    (tmp_path / "fine.csv").write_text(rows)
    with TableChunks(tmp_path / "fine.csv", 10, usecols=used) as table:
        assert [list(chunk.columns) for chunk in table] == [used] * 3
    (tmp_path / "ragged.csv").write_text(rows + "1,2,3,4,x,9\n")
    with (
        pytest.raises(DataError, match="line 32 has 6 fields but earlier lines have 5"),
        TableChunks(tmp_path / "ragged.csv", 10, usecols=used) as table,
    ):
        list(table)


def test_table_chunks_report_a_bad_line_with_its_number(tmp_path: Path) -> None:
    data = tmp_path / "ragged.csv"
    data.write_text("a,b\n" + "1,2\n" * 30 + "1,2,3\n")
    with TableChunks(data, 10) as table, pytest.raises(DataError, match="line 32 has 3 fields"):
        list(table)


def test_table_chunks_refuse_a_header_without_rows(tmp_path: Path) -> None:
    data = tmp_path / "empty.csv"
    data.write_text("a,b\n")
    with TableChunks(data, 10) as table, pytest.raises(DataError, match="has a header but no data"):
        list(table)


@pytest.mark.parametrize("chunk_size", [1, 7, None], ids=["1 row", "7 rows", "one chunk"])
def test_evaluate_streams_metrics_equal_to_the_in_memory_report(
    tiny_model: Path, chunk_size: int | None
) -> None:
    """evaluate's metrics are streamed chunk by chunk (counts and scores, no rows kept) and
    equal the in-memory report on the same outputs."""
    from conftest import EXPRESSION, assert_documents_close

    from mlpcli import task as tasks

    streamed = predicting.evaluate_file(tiny_model, str(EXPRESSION), chunk_size=chunk_size)
    kept = predicting.evaluate_table(tiny_model, str(EXPRESSION))
    assert kept.outputs is not None and kept.y_true is not None
    model = trained.load_trained(tiny_model)
    memory = tasks.get(model.task).report(model.encoder, kept.outputs, kept.y_true, 0.5)
    assert streamed["metrics"]["n_samples"] == len(kept.y_true)
    assert_documents_close(streamed["metrics"], memory)
    assert predicting.evaluate_table(tiny_model, str(EXPRESSION), keep_arrays=False).outputs is None
