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


def test_round_trip_keeps_arrays_and_metadata(tmp_path: Path, model_path: Path) -> None:
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    meta = {
        key: value
        for key, value in modelfile.read_metadata(model_path).items()
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


# --- hostile files stay bounded (issue 12) -------------------------------------------------------
def _add_zero_member(source: Path, target: Path, name: str, n_floats: int) -> Path:
    """`source` plus a deflated member `name` declaring `n_floats` float32 zeros: a few hundred
    KB on disk that expand to 4 x n_floats bytes (a zip bomb)."""
    import warnings

    target.write_bytes(source.read_bytes())
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (n_floats,)}
    )
    chunk = bytes(1 << 20)
    with warnings.catch_warnings(), zipfile.ZipFile(target, "a", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # a duplicate name, when `name` replaces a member
        with archive.open(name + ".npy", "w", force_zip64=True) as fh:
            fh.write(header.getvalue())
            left = 4 * n_floats
            while left:
                fh.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
    return target


_PEAK_RSS = """
import resource, sys
from mlpcli.errors import ModelFileError
from mlpcli.trained import load_trained
try:
    load_trained(sys.argv[1])
    print("loaded", end=" ")
except ModelFileError as error:
    print("refused", end=" ")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _load_in_subprocess(path: Path) -> tuple[str, int]:
    """'loaded' or 'refused', and the peak resident memory (KiB) of a fresh process."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True, text=True, check=True
    )
    outcome, peak = run.stdout.split()
    return outcome, int(peak)


@pytest.mark.slow
def test_unknown_huge_member_is_never_read(tmp_path: Path, model_path: Path) -> None:
    hostile = _add_zero_member(model_path, tmp_path / "bomb.npz", "junk", 1 << 26)  # 256 MiB
    assert hostile.stat().st_size < 2 << 20
    outcome, peak = _load_in_subprocess(hostile)
    clean_outcome, clean_peak = _load_in_subprocess(model_path)
    assert (outcome, clean_outcome) == ("loaded", "loaded")
    assert peak - clean_peak < 64 << 10, (peak, clean_peak)  # KiB: not the 256 MiB member


@pytest.mark.slow
def test_oversized_known_member_is_refused_before_reading(tmp_path: Path, model_path: Path) -> None:
    hostile = _add_zero_member(model_path, tmp_path / "bomb.npz", "pre.scale", 1 << 26)
    with pytest.raises(ModelFileError, match="appears twice"):
        load_trained(hostile)
    # Without the original member, the oversized one is refused by its header alone.
    meta, stored = modelfile.load(model_path)
    del stored["pre.scale"]
    payload = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with (tmp_path / "base.npz").open("wb") as fh:
        np.savez(fh, **stored, __metadata__=payload)
    hostile = _add_zero_member(tmp_path / "base.npz", tmp_path / "bomb2.npz", "pre.scale", 1 << 26)
    outcome, peak = _load_in_subprocess(hostile)
    _, clean_peak = _load_in_subprocess(model_path)
    assert outcome == "refused"
    assert peak - clean_peak < 64 << 10, (peak, clean_peak)
    with pytest.raises(ModelFileError, match=r"'pre.scale' has shape \(67108864,\)"):
        load_trained(hostile)


def test_highly_compressed_member_is_refused_as_a_zip_bomb(
    tmp_path: Path, model_path: Path
) -> None:
    meta, stored = modelfile.load(model_path)
    n_in = meta["architecture"]["n_inputs"]
    meta["architecture"]["hidden_layer_sizes"] = [65536]
    stored["net.layer1.W"] = np.zeros((n_in, 65536), np.float32)
    stored["net.layer1.b"] = np.zeros(65536, np.float32)
    stored["net.output.W"] = np.zeros((65536, 3), np.float32)
    payload = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = tmp_path / "compressed.npz"
    with path.open("wb") as fh:
        np.savez_compressed(fh, **stored, __metadata__=payload)
    with pytest.raises(ModelFileError, match=r"array 'net.layer1.W' expands from .* zip bomb"):
        load_trained(path)


def test_metadata_above_the_cap_is_refused_unread(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modelfile, "MAX_METADATA_BYTES", 1000)  # the real one is 64 MiB
    with pytest.raises(ModelFileError, match=r"the model metadata is .* more than the 1000 bytes"):
        modelfile.read_metadata(model_path)


def test_expected_arrays_are_exactly_what_train_saves(model_path: Path) -> None:
    meta, stored = modelfile.load(model_path)
    assert {k: v.shape for k, v in stored.items()} == modelfile.expected_arrays(meta)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "regression"])
def test_target_arrays_match_what_each_task_stores(task: str) -> None:
    import pandas as pd

    from mlpcli.target_encoding import TASKS

    frame = pd.DataFrame({"y": ["0", "1", "1", "0"], "z": ["1", "0", "1", "1"]})
    numeric = pd.DataFrame({"y": [0.5, 1.0, 2.0, 3.0], "z": [1.0, 2.0, 4.0, 9.0]})
    encoder = TASKS[task](["y"] if task in ("binary", "multiclass") else ["y", "z"])
    encoder.fit(numeric if task == "regression" else frame, None)
    assert tuple(encoder.arrays()) == modelfile.TARGET_ARRAYS.get(task, ())
