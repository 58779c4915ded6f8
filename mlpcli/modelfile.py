"""The single, safe model file: a NumPy `.npz` of arrays plus one JSON metadata entry.

It is read with `zipfile` and `numpy.lib.format`, never with pickle, so loading a file from a
stranger never executes code. Nothing is allocated before it is checked: the metadata entry has
a size cap, a nesting cap and a typed schema; every array's `.npy` header (dtype, shape) is read
on its own and compared with what the caller expects (`ModelArchive.arrays`) before any data is
read; members nobody asked for are never read; and an array holding NaN, infinity, complex,
date, object or structured values is refused. A hostile 9 MB file cannot make us allocate 2 GiB.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from mlpcli.errors import ModelFileError
from mlpcli.limits import MAX_DEPTH, depth, format_bytes, shorten
from mlpcli.outputs import atomic_path

FORMAT = "mlpcli-model"
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"

#: Metadata JSON above this is refused unread (a 20,000-gene model's metadata is ~2 MB).
MAX_METADATA_BYTES = 64 << 20
#: np.savez stores members uncompressed; a compressed member may expand at most this much
#: (weights compress ~1.1x, a zip bomb ~1000x).
MAX_COMPRESSION_RATIO = 20
#: Array dtype kinds a model holds: floats, integers, booleans (and the metadata's bytes).
NUMERIC_KINDS = "fiub"
_KIND_NAMES = {
    "c": "complex",
    "M": "datetime",
    "m": "timedelta",
    "O": "Python object (pickle)",
    "V": "structured",
    "U": "text",
    "S": "bytes",
}


# --------------------------------------------------------------------------- metadata schema
class Spec:
    """The expected JSON type of one metadata field; `problem` says what is wrong, or None."""

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        raise NotImplementedError


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), "null" if value is None else "a number"
    )


class Scalar(Spec):
    """A JSON string, boolean, integer or number (an integer is a number; true is neither)."""

    def __init__(
        self,
        kind: type,
        minimum: float | None = None,
        nullable: bool = False,
        maximum: float | None = None,
    ) -> None:
        self.kind, self.minimum, self.nullable, self.maximum = kind, minimum, nullable, maximum

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        if value is None and self.nullable:
            return None
        kinds = (int, float) if self.kind is float else (self.kind,)
        if isinstance(value, bool) != (self.kind is bool) or not isinstance(value, kinds):
            name = {str: "a string", bool: "true/false", int: "a whole number"}.get(
                self.kind, "a number"
            )
            return where, f"should be {name}, not {_kind(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return where, "should be a finite number"
        if self.minimum is not None and isinstance(value, (int, float)) and value < self.minimum:
            return where, f"should be at least {self.minimum:g}, not {shorten(value)}"
        if self.maximum is not None and isinstance(value, (int, float)) and value > self.maximum:
            return where, f"should be at most {self.maximum:g}, not {shorten(value)}"
        return None


class Anything(Spec):
    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        return None


class ListOf(Spec):
    def __init__(self, item: Spec, nullable: bool = False) -> None:
        self.item, self.nullable = item, nullable

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        if value is None and self.nullable:
            return None
        if not isinstance(value, list):
            return where, f"should be a list, not {_kind(value)}"
        for i, item in enumerate(value):
            found = self.item.problem(item, f"{where}[{i}]")
            if found:
                return found
        return None


class MapOf(Spec):
    """An object with any keys, each value of one spec."""

    def __init__(self, value: Spec) -> None:
        self.value = value

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        if not isinstance(value, dict):
            return where, f"should be an object, not {_kind(value)}"
        for key, item in value.items():
            found = self.value.problem(item, f"{where}.{key}")
            if found:
                return found
        return None


class Record(Spec):
    """An object with known keys: `required` ones must be there; others may be absent (or
    null where their spec allows it). Unknown keys pass, for files from newer versions."""

    def __init__(self, required: Mapping[str, Spec], optional: Mapping[str, Spec] = {}) -> None:
        self.required, self.optional = dict(required), dict(optional)

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        if not isinstance(value, dict):
            return where, f"should be an object, not {_kind(value)}"
        for key, spec in {**self.required, **self.optional}.items():
            name = f"{where}.{key}" if where else key
            if key not in value:
                if key in self.required:
                    return name, "is missing"
                continue
            found = spec.problem(value[key], name)
            if found:
                return found
        return None


TEXT, FLAG, NUMBER, WHOLE = Scalar(str), Scalar(bool), Scalar(float), Scalar(int)
COUNT, SIZE = Scalar(int, minimum=0), Scalar(int, minimum=1)
MAYBE_TEXT, MAYBE_NUMBER = Scalar(str, nullable=True), Scalar(float, nullable=True)
MAYBE_COUNT = Scalar(int, minimum=0, nullable=True)
OBJECT = MapOf(Anything())
PROBABILITY = Scalar(float, minimum=0.0, maximum=1.0)

ARCHITECTURE = Record(
    {
        "n_inputs": SIZE,
        "hidden_layer_sizes": ListOf(SIZE),
        "n_outputs": SIZE,
        "activation": ListOf(TEXT),
        "output_activation": TEXT,
        "loss": TEXT,
    },
    {
        "dtype": TEXT,
        "batchnorm": FLAG,
        "dropout": NUMBER,
        "residual": FLAG,
        "weight_decay": NUMBER,
        "init": MAYBE_TEXT,
        "leaky_relu_slope": NUMBER,
        "extra": OBJECT,
    },
)
EPOCH = Record(
    {},
    {
        "epoch": COUNT,
        "train_loss": MAYBE_NUMBER,
        "val_loss": MAYBE_NUMBER,
        "val_metric": MAYBE_NUMBER,
        "lr": NUMBER,
        "seconds": NUMBER,
        "improved": FLAG,
        "best_epoch": MAYBE_COUNT,
        "grad_norms": ListOf(MAYBE_NUMBER),
    },
)
FINGERPRINT = Record({"sha256": TEXT}, {"n_rows": COUNT, "ids": ListOf(TEXT)})

#: Every metadata field mlpcli reads, with its JSON type; `SCHEMA` keeps the required keys.
METADATA = Record(
    {
        "format": TEXT,
        "format_version": WHOLE,
        "mlpcli_version": TEXT,
        "task": TEXT,
        "architecture": ARCHITECTURE,
        "preprocessing": Record(
            {
                "version": WHOLE,
                "options": Record(
                    {},
                    {
                        "impute": TEXT,
                        "fill_value": NUMBER,
                        "missing_indicators": FLAG,
                        "scale": TEXT,
                        "log1p": FLAG,
                        "max_levels": SIZE,
                        "high_cardinality": TEXT,
                    },
                ),
                "columns": ListOf(
                    Record(
                        {"name": TEXT, "kind": TEXT},
                        {"indicator": FLAG, "levels": ListOf(TEXT), "counts": ListOf(COUNT)},
                    )
                ),
            },
            {"missing_level": TEXT},
        ),
        "target": Record(
            {"version": WHOLE, "task": TEXT, "targets": ListOf(TEXT), "labels": ListOf(TEXT)},
            {"values": ListOf(ListOf(TEXT))},
        ),
        "settings": Record(
            {}, {"data": OBJECT, "preprocess": OBJECT, "model": OBJECT, "train": OBJECT}
        ),
        "training": Record(
            {},
            {
                "epochs_run": COUNT,
                "best_epoch": MAYBE_COUNT,
                "best_value": MAYBE_NUMBER,
                "monitor": MAYBE_TEXT,
                "stop_reason": MAYBE_TEXT,
                "seconds": NUMBER,
                "n_train": COUNT,
                "n_valid": COUNT,
                "n_dropped_targets": COUNT,
                "batch_size": COUNT,
                "history": ListOf(EPOCH),
                "interrupted": FLAG,
            },
        ),
        "metrics": MapOf(OBJECT),
    },
    {
        "task_reason": MAYBE_TEXT,
        "layer_names": ListOf(TEXT),
        "n_parameters": ListOf(COUNT),
        "id_columns": ListOf(TEXT),
        "feature_columns": ListOf(TEXT),
        "optimizer": OBJECT,
        "provenance": Record(
            {},
            {
                "command": ListOf(TEXT, nullable=True),
                "mlpcli_version": TEXT,
                "numpy_version": TEXT,
                "python_version": TEXT,
                "seed": Scalar(int, nullable=True),
                "inputs": ListOf(Record({"path": TEXT, "sha256": TEXT})),
            },
        ),
        "data": MapOf(FINGERPRINT),
        # train --calibrate / --threshold (calibration.fit_posthoc)
        "calibration": Record(
            {"temperature": Scalar(float, minimum=1e-2, maximum=1e2)},
            {"method": TEXT, "n_rows": COUNT, "before": OBJECT, "after": OBJECT},
        ),
        "threshold": Record(
            {"value": PROBABILITY}, {"metric": TEXT, "score": MAYBE_NUMBER, "n_rows": COUNT}
        ),
        "baselines": OBJECT,  # train's baselines (baselines.compare), shown, never read back
        "checkpoint": OBJECT,
        "search": OBJECT,
        "recipe": Record(
            {"preset": TEXT, "config": OBJECT, "numeric": ListOf(COUNT), "loss": TEXT},
            {"categorical": ListOf(ListOf(COUNT))},
        ),
    },
)

#: The required top-level keys and their JSON types (for callers that build minimal files).
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


# --------------------------------------------------------------------------- expected arrays
#: The preprocessing's arrays, one value per numeric input column (`Preprocessor.to_state`).
PREPROCESSING_ARRAYS = ("impute", "center", "scale")
#: Per task, the target encoding's arrays, one value per target (`TargetEncoder.to_state`).
TARGET_ARRAYS: dict[str, tuple[str, ...]] = {"regression": ("mean", "std")}

#: Stored preprocessing column kinds that encode a categorical input -> the encoding's name.
LEVEL_ENCODINGS = {"categorical": "one-hot", "frequency": "frequency"}
LEVEL_KINDS = tuple(LEVEL_ENCODINGS)


def level_record(column: Mapping[str, Any]) -> dict[str, Any]:
    """How a stored categorical column record is described (`describe`, `mlpcli inspect`)."""
    return {
        "column": column["name"],
        "kind": "categorical",
        "encoding": LEVEL_ENCODINGS[column["kind"]],
        "levels": list(column["levels"]),
    }


def expected_arrays(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every array a model with this (validated) metadata holds and its shape, from the
    metadata alone: the network's from its architecture, the preprocessing's from its column
    list, the target scaling's from the targets. Checkpoint loop state is not included."""
    from mlpcli.nn.network import Architecture, state_shapes

    if "recipe" in meta:  # --preset realmlp_td: the recipe network's arrays
        from mlpcli.nn.recipe import shapes_from_metadata

        shapes = {f"net.{k}": v for k, v in shapes_from_metadata(dict(meta)).items()}
    else:
        arch = Architecture.from_dict(meta["architecture"])
        shapes = {f"net.{k}": v for k, v in state_shapes(arch).items()}
    n_numeric = sum(1 for c in meta["preprocessing"]["columns"] if c["kind"] == "numeric")
    shapes.update({f"pre.{k}": (n_numeric,) for k in PREPROCESSING_ARRAYS})
    n_targets = len(meta["target"]["targets"])
    names = TARGET_ARRAYS.get(meta["target"]["task"], ())
    shapes.update({f"target.{k}": (n_targets,) for k in names})
    return shapes


def load_checked(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and exactly the arrays it calls for (`expected_arrays`), every header
    checked against its expected shape before any data is read; other members stay unread."""
    with ModelArchive(path) as archive:
        try:
            expected = expected_arrays(archive.metadata)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f"'{path}': the model metadata is inconsistent ({shorten(exc, 200)}); retrain it."
            ) from None
        return archive.metadata, archive.arrays(expected)


# --------------------------------------------------------------------------- saving
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


# --------------------------------------------------------------------------- reading
class ModelArchive:
    """An open model file: checked metadata at once, arrays only when asked for by name and
    shape. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._zip = _open_zip(self.path)
        try:
            self.members = _members(self._zip, self.path)
            self.metadata = self._read_metadata()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> ModelArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def _error(self, what: str) -> ModelFileError:
        return ModelFileError(f"'{self.path}': {what}")

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
        """Shape and dtype of array `name` from its `.npy` header alone; refuses non-numeric
        dtypes and members whose declared size disagrees with the header."""
        info = self.members.get(name)
        if info is None:
            raise self._error(
                f"array '{name}' is missing; the file is damaged or was not written by mlpcli."
            )
        try:
            with self._zip.open(info) as fh:
                version = npy_format.read_magic(fh)
                reader = (
                    npy_format.read_array_header_1_0
                    if version == (1, 0)
                    else npy_format.read_array_header_2_0
                )
                shape, _, dtype = reader(fh)
                offset = fh.tell()
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
            raise self._error(f"array '{name}' is unreadable ({shorten(exc, 200)}).") from None
        if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype:
            kind = _KIND_NAMES.get(dtype.kind, "non-numeric")
            raise self._error(
                f"array '{name}' holds {kind} values (dtype {shorten(dtype.str)}); a model "
                "holds real numbers only, so the file is damaged or was not written by mlpcli."
            )
        needed = offset + math.prod(shape) * dtype.itemsize
        if info.file_size != needed:
            raise self._error(
                f"array '{name}' declares {format_bytes(info.file_size)} but its shape "
                f"{shape} needs {format_bytes(needed)}; the file is damaged or hostile."
            )
        return tuple(shape), dtype

    def _read(self, name: str) -> np.ndarray:
        info = self.members[name]
        if (
            info.compress_type != zipfile.ZIP_STORED
            and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size + (1 << 20)
        ):
            raise self._error(
                f"array '{name}' expands from {format_bytes(info.compress_size)} to "
                f"{format_bytes(info.file_size)}, more than {MAX_COMPRESSION_RATIO}x; the file "
                "looks like a zip bomb (mlpcli stores arrays uncompressed)."
            )
        try:
            with self._zip.open(self.members[name]) as fh:
                array = npy_format.read_array(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise self._error(f"array '{name}' is unreadable ({shorten(exc, 200)}).") from None
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise self._error(
                f"array '{name}' holds NaN or infinite values; a trained model never does, so "
                "the file is damaged; retrain it."
            )
        return array

    def arrays(self, expected: Mapping[str, tuple[int, ...] | int]) -> dict[str, np.ndarray]:
        """The arrays named in `expected`, each of exactly that shape (a tuple) or of at most
        that many elements (an int). Every header is checked before any data is read; other
        members stay unread."""
        for name, want in expected.items():
            shape, _ = self.header(name)
            if isinstance(want, int):
                if math.prod(shape) > want:
                    raise self._error(
                        f"array '{name}' has shape {shape}, more than the {want:,} values the "
                        "model's architecture needs; the file is damaged or hostile."
                    )
            elif shape != tuple(want):
                raise self._error(
                    f"array '{name}' has shape {shape} but the model's metadata needs "
                    f"{tuple(want)}; the file is damaged or inconsistent; retrain it."
                )
        return {name: self._read(name) for name in expected}

    def _read_metadata(self) -> dict[str, Any]:
        if METADATA_KEY not in self.members:
            raise self._error("a NumPy archive but not an mlpcli model file.")
        shape, dtype = self.header(METADATA_KEY)
        if dtype != np.uint8 or len(shape) != 1:
            raise self._error("the model metadata is unreadable (not a byte string).")
        if shape[0] > MAX_METADATA_BYTES:
            raise self._error(
                f"the model metadata is {format_bytes(shape[0])}, more than the "
                f"{format_bytes(MAX_METADATA_BYTES)} any model needs; the file is damaged or "
                "hostile."
            )
        raw = self._read(METADATA_KEY)
        try:
            meta: dict[str, Any] = json.loads(raw.tobytes().decode("utf-8"))
        except RecursionError:
            raise self._error(
                "the model metadata is nested too deeply; the file is hostile."
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._error(f"the model metadata is unreadable ({shorten(exc, 200)}).") from None
        if depth(meta) > MAX_DEPTH:
            raise self._error(
                f"the model metadata is nested more than {MAX_DEPTH} levels deep; the file is "
                "hostile or damaged."
            )
        validate_metadata(meta, self.path)
        return meta


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise ModelFileError(f"Model file '{path}' does not exist.")
    if path.is_dir():
        raise ModelFileError(f"Model file '{path}' is a folder; give the .npz written by train.")
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ModelFileError(f"Cannot read model file '{path}' ({exc.strerror or exc}).") from None
    if head != b"PK\x03\x04":
        what = "is empty" if not head else "is not a zip archive"
        raise ModelFileError(
            f"'{path}' {what}, so it is not an mlpcli model file (give the .npz written by "
            "mlpcli train --out)."
        )
    try:
        return zipfile.ZipFile(path)
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise ModelFileError(f"'{path}' is not a readable mlpcli model file ({exc}).") from None


def _members(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """Array name -> zip entry, refusing duplicate names (which reader wins is ambiguous)."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if name in members:
            raise ModelFileError(
                f"'{path}': array '{shorten(name)}' appears twice in the zip archive; the file "
                "was tampered with, so it is refused."
            )
        members[name] = info
    return members


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Only the (checked) metadata: fast, for `inspect`."""
    with ModelArchive(path) as archive:
        return archive.metadata


def validate_metadata(meta: Any, path: str | Path) -> None:
    """The format, its version, then every field's JSON type (`METADATA`), naming the first
    wrong field."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not an mlpcli model file.")
    version = meta.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ModelFileError(
            f"'{path}' has model format version {version}, newer than this mlpcli reads "
            f"({FORMAT_VERSION}); upgrade mlpcli (in a newer checkout: `pip install .`)."
        )
    found = METADATA.problem(meta, "")
    if found:
        field, what = found
        raise ModelFileError(
            f"'{path}': model metadata field '{shorten(field, 120)}' {what}; the file is "
            "damaged or was not written by mlpcli."
        )


def load(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metadata and every array (each header checked first), for tools and tests; mlpcli's
    commands load only the arrays the architecture needs (`ModelArchive.arrays`)."""
    with ModelArchive(path) as archive:
        names = [name for name in archive.members if name != METADATA_KEY]
        expected = {name: archive.header(name)[0] for name in names}
        return archive.metadata, archive.arrays(expected)
