"""Out-of-core training: the automatic switch, the streamed preparation against in-memory
values on a table that fits, and the documented difference from in-memory training."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_documents_close

from mlpcli import outofcore, pipeline
from mlpcli.config import Settings, resolve
from mlpcli.errors import UsageError
from mlpcli.preprocessing import Preprocessor
from mlpcli.sampling import RowFile, row_hash_valid


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MLPCLI_CACHE_DIR", str(folder))
    return folder


def write_table(folder: Path, n: int = 3000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    frame = pd.DataFrame(X, columns=[f"g{i}" for i in range(5)])
    frame.loc[rng.random(n) < 0.05, "g1"] = np.nan
    frame["site"] = rng.choice(["a", "b", "c"], n)
    frame["status"] = np.where(X[:, 0] + X[:, 2] - X[:, 3] > 0, "case", "control")
    path = folder / "cohort.csv"
    frame.to_csv(path, index=False)
    old = path.stat().st_mtime - 60  # the cache does not record a file changed a moment ago
    os.utime(path, (old, old))
    return str(path)


def settings(**extra: object) -> Settings:
    return resolve({"target": ["status"], "epochs": 6, "batch_size": 32, "seed": 1, **extra})


@pytest.mark.parametrize("chunk_rows", [257, outofcore.CHUNK_ROWS])
def test_the_streamed_preparation_equals_in_memory_fitting_on_its_rows(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr(outofcore, "CHUNK_ROWS", chunk_rows)  # blocks of rows, or one block
    path = write_table(tmp_path)
    prepared = outofcore.prepare_data(path, settings(), np.random.default_rng(1))
    assert isinstance(prepared.X, RowFile) and isinstance(prepared.X_val, RowFile)
    frame = pd.read_csv(path)
    keys = np.arange(len(frame))
    valid = row_hash_valid(keys, 0.2, seed=1)  # the validation rows: the hash's, nothing else
    assert (prepared.split["set"] == "valid").to_numpy().tolist() == valid.tolist()
    assert len(prepared.X) + len(prepared.X_val) == len(frame)
    train = frame[~valid].astype({f"g{i}": np.float32 for i in range(5)})
    memory = Preprocessor().fit(train, list(prepared.selection.features), ["site"])
    streamed = prepared.preprocessor
    assert streamed.feature_names_out == memory.feature_names_out
    for part in ("impute_values_", "centers_", "scales_"):
        np.testing.assert_allclose(getattr(streamed, part), getattr(memory, part), rtol=1e-6)
    # The encoded rows on disk are what the in-memory transform gives, in file order.
    np.testing.assert_allclose(prepared.X[0 : len(train)], memory.transform(train), atol=1e-6)
    assert prepared.Y.shape == (len(train), 1)


@pytest.mark.slow
def test_training_out_of_core_is_deterministic_and_close_to_in_memory(
    tmp_path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The documented difference: another validation split (row hash, not stratified) and
    another batch order (blocks), so results are not equal, but the model is as good."""
    path = write_table(tmp_path)
    s = settings()
    with caplog.at_level(logging.INFO, logger="mlpcli"):
        first = pipeline.train(path, s, out_of_core="on")
    assert any("converting it once" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mlpcli"):
        second = pipeline.train(path, s, out_of_core="on")
    assert any("read from the table cache" in r.getMessage() for r in caplog.records)
    memory = pipeline.train(path, s, out_of_core="off")
    assert not isinstance(memory.prepared.X, RowFile)
    for key, value in first.arrays.items():
        np.testing.assert_array_equal(value, second.arrays[key])  # same seed, same model
    accuracy = [o.metrics["validation"]["accuracy"] for o in (first, memory)]
    assert accuracy[0] > 0.9 and abs(accuracy[0] - accuracy[1]) < 0.03
    assert first.metadata["training"]["n_train"] + first.metadata["training"]["n_valid"] == 3000


def test_auto_switches_on_when_the_table_would_not_fit(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    path = write_table(tmp_path, n=2000)
    guess = outofcore.estimate(path)
    assert guess is not None and guess.columns == 7
    assert 0.9 * 2000 < guess.rows < 1.1 * 2000
    assert guess.needed_bytes == outofcore.IN_MEMORY_FACTOR * 4 * guess.rows * 7
    assert not outofcore.wanted(path, "auto")  # a small table stays in memory
    monkeypatch.setattr(outofcore, "available_memory", lambda: 100_000)
    with caplog.at_level(logging.INFO, logger="mlpcli"):
        assert outofcore.wanted(path, "auto")
        outcome = pipeline.train(path, settings(epochs=2), out_of_core="auto")
    assert isinstance(outcome.prepared.X, RowFile)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said[0].startswith(f"'{path}' is trained out of core (from the table cache on disk)")
    assert "against 97.7 KiB available" in said[0] and "--out-of-core off" in said[0]
    assert not outofcore.wanted(path, "off")


def test_available_memory_is_at_most_the_ram() -> None:
    from mlpcli.limits import physical_memory

    assert 0 < outofcore.available_memory() <= physical_memory()


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        ({"top_variance": 2}, "--top-variance"),
        ({"group_pattern": "x"}, "--group-pattern"),
        ({"preset": "realmlp_td"}, "--preset realmlp_td"),
    ],
)
def test_options_that_need_the_table_in_memory_are_refused(
    tmp_path: Path, cache_dir: Path, extra: dict[str, object], option: str
) -> None:
    path = write_table(tmp_path, n=200)
    with pytest.raises(UsageError, match=f"{option} needs the table in memory"):
        outofcore.prepare_data(path, settings(**extra), np.random.default_rng(0))


def test_preset_auto_trains_out_of_core_as_the_lecture_mlp(tmp_path: Path, cache_dir: Path) -> None:
    """`--preset auto` is not refused out of core: only its classic candidate trains there."""
    path = write_table(tmp_path, n=300)
    outcome = pipeline.train(path, settings(preset="auto", epochs=2), out_of_core="on")
    assert isinstance(outcome.prepared.X, RowFile)
    assert "recipe" not in outcome.metadata  # the lecture's MLP, not the recipe


def test_a_binary_format_cannot_be_forced_out_of_core(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")  # not a Parquet file: its footer cannot be read
    with pytest.raises(UsageError, match="--out-of-core on applies to delimited text tables"):
        outofcore.wanted(str(path), "on")
    assert not outofcore.wanted(str(path), "auto")
    with pytest.raises(
        UsageError, match=r"Unknown --out-of-core 'sometimes'; choose one of: auto, off, on\."
    ):
        outofcore.wanted(str(path), "sometimes")


@pytest.mark.parametrize(
    ("target", "extra"),
    [("status", {}), ("site", {}), ("g4", {"task": "regression"})],
    ids=["binary", "multiclass", "regression"],
)
def test_final_metrics_cover_every_row_as_in_memory(
    tmp_path: Path, cache_dir: Path, target: str, extra: dict[str, object]
) -> None:
    """The final metrics out of core are streamed over every row in blocks and equal the
    in-memory report on the same rows and outputs (forward passes in the same blocks: BLAS
    rounds a product differently with the number of rows)."""
    from mlpcli import task as tasks
    from mlpcli.sampling import RowFile

    path = write_table(tmp_path, n=1500)
    s = resolve({"target": [target], "epochs": 2, "batch_size": 32, "seed": 1, **extra})
    outcome = pipeline.train(path, s, out_of_core="on")
    p, net = outcome.prepared, outcome.net
    assert isinstance(p.X, RowFile) and isinstance(p.X_val, RowFile)
    encoder, spec = p.target_encoder, tasks.get(p.task.task)
    for side, X, y_index, Y in (
        ("train", p.X, p.y_index, p.Y), ("validation", p.X_val, p.y_index_val, p.Y_val)
    ):  # fmt: skip
        streamed = outofcore.streamed_report(encoder, net, X, y_index, Y, 0.5, block_rows=257)
        assert streamed["n_samples"] == len(X)
        outputs = np.concatenate([net.forward(X.read(a, a + 257)) for a in range(0, len(X), 257)])
        memory = spec.report(encoder, outputs, spec.truth(encoder, y_index, Y), 0.5)
        assert outcome.metrics[side] == outofcore.streamed_report(encoder, net, X, y_index, Y, 0.5)
        assert_documents_close(streamed, memory)


@pytest.mark.parametrize("suffix", [".parquet", ".xlsx"])
def test_parquet_and_excel_train_out_of_core_as_the_csv_of_their_values(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """A Parquet file goes into the cache in row-group batches (`iter_batches`, here of 97
    rows: never the whole table) and an Excel sheet in openpyxl's row blocks; both give the
    out-of-core model of the CSV holding the same values, array for array, and `auto` sizes
    them from their metadata (Parquet's footer, the sheet's stored dimension)."""
    pytest.importorskip("pyarrow" if suffix == ".parquet" else "openpyxl")
    monkeypatch.setattr(outofcore, "CHUNK_ROWS", 97)
    csv = write_table(tmp_path, n=400)
    frame = pd.read_csv(csv)
    other = tmp_path / f"cohort{suffix}"
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), other,
                       row_group_size=150)  # fmt: skip
    else:
        frame.to_excel(other, index=False)
    old = other.stat().st_mtime - 60
    os.utime(other, (old, old))
    guess = outofcore.estimate(str(other))
    assert guess is not None and (guess.rows, guess.columns) == (400, 7)
    s = settings(epochs=2)
    models = [pipeline.train(p, s, out_of_core="on") for p in (str(other), csv)]
    assert isinstance(models[0].prepared.X, RowFile)
    for name, value in models[1].arrays.items():
        np.testing.assert_array_equal(models[0].arrays[name], value, err_msg=name)
    assert models[0].metrics == models[1].metrics


def test_a_sparse_h5ad_trains_out_of_core_as_the_csv_of_its_values(
    tmp_path: Path, cache_dir: Path
) -> None:
    """AnnData with a CSR X streams into the cache by row blocks (its obs_names the ID) and
    gives the out-of-core model of the CSV holding the same values, array for array."""
    pytest.importorskip("h5py")
    from test_formats import sample_frame, write_h5ad

    frame = sample_frame()
    h5ad = write_h5ad(tmp_path / "cells.h5ad", frame, sparse=True)
    csv = tmp_path / "cells.csv"
    frame.to_csv(csv, index=False)
    for path in (h5ad, csv):
        old = path.stat().st_mtime - 60
        os.utime(path, (old, old))
    options = {"target": ["subtype"], "epochs": 3, "hidden": [8], "seed": 3, "batch_size": 32}
    guess = outofcore.estimate(str(h5ad))
    assert guess is not None and guess.rows == len(frame)
    from_h5ad = pipeline.train(str(h5ad), resolve(options), out_of_core="on")
    from_csv = pipeline.train(str(csv), resolve({**options, "id": ["sample_id"]}), out_of_core="on")
    assert isinstance(from_h5ad.prepared.X, RowFile)
    names = [k for k in from_csv.arrays if k.startswith("net.")]
    assert names and sorted(names) == sorted(k for k in from_h5ad.arrays if k.startswith("net."))
    for name in names:
        np.testing.assert_array_equal(from_h5ad.arrays[name], from_csv.arrays[name], err_msg=name)
    assert from_h5ad.metrics == from_csv.metrics


@pytest.mark.parametrize(
    ("target", "extra"),
    [("status", {}), ("site", {}), ("g4", {}), ("code", {}), ("code", {"task": "regression"})],
    ids=["binary", "multiclass", "regression", "integer-classes", "regression-set"],
)
def test_the_task_from_the_streamed_target_is_the_in_memory_one(
    tmp_path: Path, cache_dir: Path, target: str, extra: dict[str, object]
) -> None:
    """The task is decided on each target's distinct values, gathered block by block (not the
    whole column factorized at once): the same task, reason and labels as in memory, row
    counts included (integer classes need fewer than 5% of the rows as distinct values)."""
    from mlpcli import prepare

    path = write_table(tmp_path, n=1200)
    frame = pd.read_csv(path)
    frame["code"] = np.arange(len(frame)) % 7
    frame.loc[::50, "code"] = np.nan
    frame.to_csv(path, index=False)
    old = Path(path).stat().st_mtime - 60
    os.utime(path, (old, old))
    s = resolve({"target": [target], **extra})
    streamed = outofcore.scan_table(path, s)
    memory = prepare.load_table(path, s)
    assert (streamed.task.task, streamed.task.labels) == (memory.task.task, memory.task.labels)
    assert streamed.task.reason == memory.task.reason
    assert streamed.n_present == len(memory.frame)


# --------------------------------------------------------------------------- cv and tune
def test_folds_hold_every_row_out_once_per_repeat_and_keep_groups_whole(
    tmp_path: Path, cache_dir: Path
) -> None:
    """Out-of-core folds come from row hashes (no table in memory): per repeat every row with
    a target is held out exactly once, folds are near 1/K of the rows, a --group stays in one
    fold, repeats draw other folds, and the inner validation rows are about --valid-fraction
    of each fold's training rows (another hash: not the held-out fold's)."""
    from mlpcli import crossval

    path = write_table(tmp_path, n=3000)
    frame = pd.read_csv(path)
    for extra, key in (({}, None), ({"group": "site"}, "site")):
        s = settings(**extra)
        scan = outofcore.scan_table(path, s)
        folds = 3 if key is None else 2
        for repeat in range(2):
            roles = [crossval.fold_roles(scan, s, folds, repeat, f) for f in range(folds)]
            held = np.array([r == outofcore.TEST for r in roles])
            assert (held.sum(axis=0) == 1).all()  # each row held out once
            if key is None:
                assert np.allclose(held.mean(axis=1), 1 / folds, atol=0.03)
                valid = np.array([(r == outofcore.VALID).sum() / (r != outofcore.TEST).sum()
                                  for r in roles])  # fmt: skip
                assert np.allclose(valid, 0.2, atol=0.03)
            else:  # a group's rows are all in one fold
                for f in range(folds):
                    inside = set(frame[key][held[f]])
                    assert not inside & set(frame[key][~held[f]])
            if repeat == 0:
                first = held
        assert key is not None or not np.array_equal(first, held)  # the repeats differ


def test_a_fold_is_the_in_memory_fit_and_encoding_of_its_own_rows(
    tmp_path: Path, cache_dir: Path
) -> None:
    """A fold built from the cache fits its preprocessing on its training rows only and
    encodes its held-out rows with it, as the in-memory code does on the same rows."""
    from mlpcli import crossval

    path = write_table(tmp_path, n=2000)
    s = settings()
    scan = outofcore.scan_table(path, s)
    fold = crossval.fold_out_of_core(path, scan.entry.sha256, s, 4, 1, 2)
    roles = crossval.fold_roles(scan, s, 4, 0, 2)
    frame = pd.read_csv(path).astype({f"g{i}": np.float32 for i in range(5)})
    train, test = frame[roles == outofcore.TRAIN], frame[roles == outofcore.TEST]
    memory = Preprocessor().fit(train, list(fold.prepared.selection.features), ["site"])
    for part in ("impute_values_", "centers_", "scales_"):
        np.testing.assert_allclose(
            getattr(fold.prepared.preprocessor, part), getattr(memory, part), rtol=1e-6
        )
    assert isinstance(fold.X_test, RowFile) and len(fold.X_test) == len(test)
    np.testing.assert_allclose(fold.X_test[0 : len(test)], memory.transform(test), atol=1e-6)
    assert fold.test_rows.tolist() == np.flatnonzero(roles == outofcore.TEST).tolist()
    assert (fold.repeat, fold.fold) == (0, 2)


def test_cv_out_of_core_is_deterministic_and_close_to_in_memory(
    tmp_path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The documented difference from in-memory cv: other folds (row hash, not stratified),
    another inner split and batch order; the same seed gives the same results, every row is
    scored once per repeat, and the mean accuracy stays within 0.03 of in memory."""
    from mlpcli import crossval

    path = write_table(tmp_path)
    s = settings()
    with caplog.at_level(logging.INFO, logger="mlpcli"):
        first = crossval.cross_validate(path, s, folds=3, repeats=2, out_of_core="on")
    assert any("is cross-validated out of core (--out-of-core on)" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    second = crossval.cross_validate(path, s, folds=3, repeats=2, out_of_core="on")
    memory = crossval.cross_validate(path, s, folds=3, repeats=2, out_of_core="off")
    assert [r.report for r in first.results] == [r.report for r in second.results]
    for repeat in range(2):
        assert sum(r.n_test for r in first.results if r.repeat == repeat) == 3000
    assert not first.stratified and memory.stratified
    assert first.n_samples == memory.n_samples == 3000
    means = [cv.summary()["accuracy"]["mean"] for cv in (first, memory)]
    assert means[0] > 0.9 and abs(means[0] - means[1]) < 0.03
    assert first.baselines() is None  # the baselines read X whole: not out of core
    assert not list((cache_dir / "training").glob("rows-*"))  # the folds' row files are gone


def test_tune_out_of_core_scores_what_train_and_cv_out_of_core_score(
    tmp_path: Path, cache_dir: Path
) -> None:
    """tune out of core scores each candidate on the validation split of `train
    --out-of-core` (or on cv's out-of-core folds with --cv): the same numbers exactly."""
    from mlpcli import crossval, tuning

    path = write_table(tmp_path, n=1500)
    s = settings(epochs=3)
    space = tuning.space_from_dict({"lr": [0.01, 0.003]}, s)
    split = tuning.search(path, s, space, out_of_core="on")
    folds = tuning.search(path, s, space, cv=3, out_of_core="on")
    for candidate, scores in zip(split.candidates, split.results, strict=True):
        trained = pipeline.train(path, candidate.settings, out_of_core="on")
        assert scores[0].score == trained.metrics["validation"]["accuracy"]
    for candidate, scores in zip(folds.candidates, folds.results, strict=True):
        cv = crossval.cross_validate(path, candidate.settings, folds=3, out_of_core="on")
        assert [r.score for r in scores] == [r.score for r in cv.results]


def test_cv_out_of_core_switches_on_by_itself_and_refuses_oof_out(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from mlpcli.cli import app

    path = write_table(tmp_path, n=600)
    monkeypatch.setattr(outofcore, "available_memory", lambda: 10_000)
    args = ["cv", path, "--target", "status", "--folds", "2", "--epochs", "2", "--seed", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"'{path}' is cross-validated out of core (from the table cache on disk)" in (
        " ".join(result.stderr.split())
    )
    refused = CliRunner().invoke(app, [*args, "--oof-out", str(tmp_path / "oof.csv")])
    assert refused.exit_code == 2
    lines = [line for line in refused.stderr.splitlines() if line.startswith("Error")]
    assert lines == [
        "Error: --oof-out needs the table in memory; leave it out or pass --out-of-core off."
    ]
    assert not (tmp_path / "oof.csv").exists()


# --------------------------------------------------------------------------- explain
@pytest.mark.parametrize("metric", [None, "log_loss", "roc_auc"])
def test_explain_out_of_core_equals_in_memory(
    tmp_path: Path, cache_dir: Path, metric: str | None
) -> None:
    """Permutation importance from the cache shuffles each feature by the global permutation
    in-memory explain draws for the seed: the same importances (accuracy and ROC AUC
    exactly here; log loss to float32 rounding of the forward passes in other blocks)."""
    from mlpcli import explain

    path = write_table(tmp_path, n=1500)
    outcome = pipeline.train(path, settings(epochs=3))
    model = str(tmp_path / "m.npz")
    pipeline.write_outputs(outcome, model)
    options = explain.ExplainOptions(repeats=3, seed=4, metric=metric)
    streamed = explain.explain_files(model, path, options, out_of_core="on")
    memory = explain.explain_files(model, path, options, out_of_core="off")
    assert streamed.n_rows == memory.n_rows == 1500
    assert streamed.features == memory.features and streamed.inputs == memory.inputs
    np.testing.assert_allclose(streamed.baseline_score, memory.baseline_score, rtol=1e-6)
    np.testing.assert_allclose(
        streamed.repeat_importances, memory.repeat_importances, rtol=1e-5, atol=1e-5
    )
    assert not list((cache_dir / "training").glob("explain-*"))  # the row file is gone


def test_explain_out_of_core_switches_on_by_itself_and_refuses_other_methods(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from mlpcli.cli import app

    path = write_table(tmp_path, n=600)
    outcome = pipeline.train(path, settings(epochs=2))
    model = str(tmp_path / "m.npz")
    pipeline.write_outputs(outcome, model)
    monkeypatch.setattr(outofcore, "available_memory", lambda: 50_000)  # < 4x the matrix
    result = CliRunner().invoke(app, ["explain", model, path, "--repeats", "2"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert f"'{path}' is explained out of core (from the table cache on disk)" in said
    refused = CliRunner().invoke(
        app, ["explain", model, path, "--method", "gradient", "--out-of-core", "on"]
    )
    assert refused.exit_code == 2
    lines = [line for line in refused.stderr.splitlines() if line.startswith("Error")]
    assert lines == [
        "Error: --method gradient does not work out of core; use --method permutation or pass "
        "--out-of-core off."
    ]


def test_explain_out_of_core_refuses_a_feature_too_wide_to_hold(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass holds a feature's encoded columns of every row beside the rows' permutation,
    targets and outputs: a group for which they would not fit in the memory available is
    refused before any pass, saying what to do; one that fits is not."""
    from mlpcli import explain
    from mlpcli.explain import ondisk
    from mlpcli.trained import load_trained

    path = write_table(tmp_path, n=400)
    model = str(tmp_path / "m.npz")
    pipeline.write_outputs(pipeline.train(path, settings(epochs=1)), model)
    n_outputs = load_trained(model).net.architecture.n_outputs
    fixed = 400 * (ondisk.PASS_BYTES_PER_ROW + n_outputs * (4 + ondisk.OUTPUT_BYTES_PER_ROW))
    monkeypatch.setattr(outofcore, "available_memory", lambda: fixed + 5 * 400 * 4)
    options = explain.ExplainOptions(repeats=1, groups={"wide": ["g0", "g1", "g2", "site"]})
    with pytest.raises(UsageError, match=r"'wide' has 6 \(9.4 KiB for 400 rows; .*more than"):
        explain.explain_files(model, path, options, out_of_core="on")
    narrow = explain.ExplainOptions(repeats=1, groups={"narrow": ["g0", "g1", "g2"]})
    assert explain.explain_files(model, path, narrow, out_of_core="on")
