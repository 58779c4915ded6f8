"""The single, safe model file: a NumPy `.npz` of arrays plus one JSON metadata entry.

It loads with `numpy.load(..., allow_pickle=False)`: no pickle anywhere, so loading a file from a
stranger never executes code. The metadata is checked against a small schema, and array shapes
against the architecture, before anything is used.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mlpcli.errors import ModelFileError
from mlpcli.outputs import atomic_path

FORMAT = "mlpcli-model"
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"

#: Required metadata keys and their JSON types.
SCHEMA: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "mlpcli_version": str,
    "task": str,
    "architecture": dict,
    "preprocessing": dict,
    "target": dict,
    "settings": dict,
    "training": dict,
    "metrics": dict,
}


def save(
    path: str | Path,
    arrays: dict[str, np.ndarray],
    metadata: dict[str, Any],
    option: str = "--out",
    now: bool = False,
) -> None:
    """Write arrays and metadata atomically (staged with the run's other outputs unless `now`);
    refuses object arrays and non-finite weights."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    for name, array in arrays.items():
        if array.dtype == object:
            raise TypeError(f"array '{name}' has dtype object; the model file holds no pickle")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"array '{name}' holds non-finite values; refusing to save it")
    payload = json.dumps(meta, allow_nan=False, sort_keys=True).encode("utf-8")
    with atomic_path(path, option, now=now) as tmp, tmp.open("wb") as fh:
        contents = {**arrays, METADATA_KEY: np.frombuffer(payload, dtype=np.uint8)}
        # numpy's stub gives savez's **kwds the type of its allow_pickle flag.
        np.savez(fh, **contents)  # type: ignore[arg-type]


def _open(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Model file '{path}' does not exist.")
    if path.is_dir():
        raise ModelFileError(f"Model file '{path}' is a folder; give the .npz written by train.")
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":
        what = "is empty" if not head else "is not a zip archive"
        raise ModelFileError(
            f"'{path}' {what}, so it is not an mlpcli model file (give the .npz written by "
            "mlpcli train --out)."
        )
    try:
        return np.load(path, allow_pickle=False)
    except ValueError:
        raise ModelFileError(
            f"'{path}' is not an mlpcli model file (it holds pickled data, which is refused)."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"'{path}' is not a readable mlpcli model file ({exc}).") from None


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Only the metadata: fast, for `inspect`."""
    with _open(path) as archive:
        return _metadata(archive, path)


def _metadata(archive: Any, path: str | Path) -> dict[str, Any]:
    if METADATA_KEY not in archive.files:
        raise ModelFileError(f"'{path}' is a NumPy archive but not an mlpcli model file.")
    try:
        raw = archive[METADATA_KEY]
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("metadata is not a byte string")
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"'{path}': the model metadata is unreadable ({exc}).") from None
    validate_metadata(meta, path)
    return meta


def validate_metadata(meta: Any, path: str | Path) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not an mlpcli model file.")
    version = meta.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ModelFileError(
            f"'{path}' has model format version {version}, newer than this mlpcli reads "
            f"({FORMAT_VERSION}); upgrade mlpcli (in a newer checkout: `pip install .`)."
        )
    for key, kind in SCHEMA.items():
        if not isinstance(meta.get(key), kind):
            raise ModelFileError(
                f"'{path}': model metadata field '{key}' is missing or malformed; "
                "the file is damaged or was not written by mlpcli."
            )


def load(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metadata and every array; object arrays and pickles are refused."""
    with _open(path) as archive:
        meta = _metadata(archive, path)
        arrays: dict[str, np.ndarray] = {}
        for name in archive.files:
            if name == METADATA_KEY:
                continue
            try:
                arrays[name] = archive[name]
            except ValueError:
                raise ModelFileError(
                    f"'{path}': array '{name}' holds Python objects (pickle), which is refused."
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise ModelFileError(f"'{path}': array '{name}' is unreadable ({exc}).") from None
    return meta, arrays
