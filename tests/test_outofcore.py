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


def test_a_binary_format_cannot_be_forced_out_of_core(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
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


@pytest.mark.parametrize("command", ["cv", "tune", "explain"])
def test_commands_without_an_out_of_core_path_refuse_on(command: str, tiny_model: Path) -> None:
    """cv, tune and explain read the table whole: `--out-of-core on` is one line saying so,
    exit 2, before any reading."""
    from conftest import EXPRESSION
    from typer.testing import CliRunner

    from mlpcli.cli import app

    head = [str(tiny_model)] if command == "explain" else []
    target = [] if command == "explain" else ["--target", "subtype"]
    target += ["--space", "space.toml"] if command == "tune" else []  # refused before it is read
    result = CliRunner().invoke(
        app, [command, *head, str(EXPRESSION), *target, "--out-of-core", "on"]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        f"Error: {command} cannot work out of core yet ("
    )
    assert "--out-of-core off" in lines[0]


def test_commands_without_an_out_of_core_path_warn_when_the_table_would_not_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_table(tmp_path, n=500)
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        outofcore.in_memory_only("cv", path, "auto")  # fits: nothing said
        assert not caplog.records
        monkeypatch.setattr(outofcore, "available_memory", lambda: 1000)
        outofcore.in_memory_only("cv", path, "off")
        assert not caplog.records
        outofcore.in_memory_only("cv", path, "auto")
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"'{path}' may not fit in memory: ") and "cv reads it whole" in said
    with pytest.raises(UsageError, match="Unknown --out-of-core 'maybe'"):
        outofcore.in_memory_only("tune", path, "maybe")


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
