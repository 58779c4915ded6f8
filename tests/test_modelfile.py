"""The model file: a safe `.npz` that loading never executes, checked before use."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import PickleMarker

from mlpcli import modelfile
from mlpcli.errors import ModelFileError
from mlpcli.trained import load_trained

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tiny_model: Path) -> Path:
    return tiny_model


def _rewrite(
    source: Path,
    target: Path,
    change: dict[str, object] | None = None,
    arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    meta, stored = modelfile.load(source)
    meta.update(change or {})
    stored.update(arrays or {})
    payload = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with target.open("wb") as fh:
        np.savez(fh, **stored, __metadata__=payload)
    return target


def test_round_trip_keeps_arrays_and_metadata(tmp_path: Path) -> None:
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    meta = {
        key: ({} if kind is dict else "x")
        for key, kind in modelfile.SCHEMA.items()
        if key not in ("format", "format_version")
    }
    modelfile.save(tmp_path / "m.npz", arrays, meta)
    loaded_meta, loaded = modelfile.load(tmp_path / "m.npz")
    assert np.array_equal(loaded["a"], arrays["a"]) and loaded["a"].dtype == np.float32
    assert loaded_meta["format_version"] == modelfile.FORMAT_VERSION
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:  # plain numpy reads it
        assert set(archive.files) == {"a", modelfile.METADATA_KEY}


def test_save_refuses_object_arrays_and_nan_weights(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        modelfile.save(tmp_path / "m.npz", {"a": np.array([object()])}, {})
    with pytest.raises(ValueError, match="non-finite"):
        modelfile.save(tmp_path / "m.npz", {"a": np.array([np.nan])}, {})
    assert list(tmp_path.iterdir()) == []


def test_loaded_model_predicts_like_the_trained_one(model_path: Path) -> None:
    model = load_trained(model_path)
    assert model.task == "multiclass" and model.id_columns == ["sample_id"]
    assert model.net.architecture.hidden_layer_sizes == (8,)


def test_pickled_object_array_is_refused_and_never_executed(
    tmp_path: Path, model_path: Path
) -> None:
    marker = tmp_path / "marker"
    evil = np.array([PickleMarker(marker)], dtype=object)
    path = _rewrite(model_path, tmp_path / "evil.npz", arrays={"net.layer1.W": evil})
    with pytest.raises(ModelFileError, match="pickle"):
        modelfile.load(path)
    with pytest.raises(ModelFileError):
        load_trained(path)
    assert not marker.exists()


def test_plain_pickle_named_npz_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(PickleMarker(marker)))
    with pytest.raises(ModelFileError, match="not a zip archive"):
        modelfile.load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, m: p.write_bytes(m.read_bytes()[: len(m.read_bytes()) // 2]), "readable"),
        (lambda p, m: p.write_text("a,b\n1,2\n"), "model file"),
        (lambda p, m: p.write_bytes(b""), "model file"),
        (lambda p, m: _zip_without_model(p), "not an mlpcli model"),
        (lambda p, m: _rewrite(m, p, {"format_version": 99}), "newer than this mlpcli"),
        (lambda p, m: _rewrite(m, p, {"architecture": "gone"}), "'architecture'"),
        (lambda p, m: _rewrite(m, p, {"format": "other"}), "not an mlpcli model"),
        (
            lambda p, m: _rewrite(m, p, arrays={"net.layer1.W": np.zeros((3, 3), np.float32)}),
            "damaged or inconsistent",
        ),
    ],
    ids=[
        "truncated",
        "csv",
        "empty",
        "foreign-zip",
        "newer-version",
        "tampered-metadata",
        "other-format",
        "wrong-shape",
    ],
)
def test_bad_model_files_raise_model_file_error(
    tmp_path: Path, model_path: Path, make: object, message: str
) -> None:
    path = tmp_path / "bad.npz"
    make(path, model_path)  # type: ignore[operator]
    with pytest.raises(ModelFileError, match=message) as info:
        load_trained(path)
    assert info.value.exit_code == 4
    assert "\n" not in str(info.value)


def _zip_without_model(path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    path.write_bytes(buffer.getvalue())


def test_missing_model_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load_trained(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="folder"):
        load_trained(tmp_path)
