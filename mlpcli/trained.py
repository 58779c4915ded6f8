"""A saved model brought back to life, and its forward pass on raw tables.

`TrainedModel` and `load_trained` are what `predict`, `evaluate`, `explain`, `report` and the
Python API use; the block forward gives every row the same bits in any chunk and on any machine.
Training (`pipeline` code in `pipeline.py`) and prediction (`predicting.py`) both import this
module and it imports neither, so the two no longer reach into each other.

`inspect` reads model files without pandas: the preprocessing and target classes (which import
pandas) are imported when a model is loaded, not when this module is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import NDArray

from mlpcli import modelfile
from mlpcli.calibration import fold_temperature
from mlpcli.errors import ModelFileError, UsageError
from mlpcli.limits import shorten
from mlpcli.nn.network import MLP, Architecture
from mlpcli.task import THRESHOLD

if TYPE_CHECKING:
    import pandas as pd

    from mlpcli.preprocessing import Preprocessor
    from mlpcli.target_encoding import TargetEncoder

#: Rows per forward pass. Every pass gets exactly this many rows (the last one zero-padded), so
#: a row's outputs do not depend on which other rows share its chunk: BLAS sums in an order that
#: depends on the matrix height, and chunked predictions would otherwise differ from one-shot
#: ones in the last float32 digit. Blocks this small also keep a (256, 128) network's
#: activations in cache: 3x faster than 65,536-row blocks on one core.
FORWARD_BLOCK = 1024


_BLAS: list[Any] = []


def one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread (a cached threadpoolctl controller: 7 us).

    Predictions then do not depend on the machine's core count (BLAS sums in an order that
    depends on its threads), and the second core is free for `prefetch` to parse the next
    chunk: on 2 cores, 2 BLAS threads on 1,024-row blocks were slower, not faster."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def forward(
    model: TrainedModel, frame: pd.DataFrame, members: bool = False
) -> NDArray[np.floating]:
    """Network outputs for the rows of a raw table, in blocks of `FORWARD_BLOCK` rows on one
    BLAS thread: the same row gives the same bits in any chunk, on any machine size. With
    `members`, an ensemble's (K, n, outputs) member outputs, whose mean is the usual output."""
    X = model.transform(frame)
    net = model.net
    if members:
        check_ensemble(model)
        return _member_forward(model.net, X)
    out = np.empty((len(X), net.architecture.n_outputs), dtype=net.dtype)
    with one_blas_thread():
        for start, rows, block in _padded_blocks(X):
            out[start : start + rows] = net.forward(block, batch_size=FORWARD_BLOCK)[:rows]
    return out


def _padded_blocks(X: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, rows, block) over `X` in FORWARD_BLOCK rows, the last zero-padded to full size, so
    every row meets the same matrix-product shapes (the same bits) wherever it sits in a file."""
    for start in range(0, len(X), FORWARD_BLOCK):
        block = X[start : start + FORWARD_BLOCK]
        rows = len(block)
        if rows < FORWARD_BLOCK:
            padding = np.zeros((FORWARD_BLOCK - rows, X.shape[1]), X.dtype)
            block = np.concatenate([block, padding])
        yield start, rows, block


def check_ensemble(model: TrainedModel, option: str = "--spread") -> None:
    """Refuse a model with no ensemble members to spread over."""
    net: Any = model.net
    if not hasattr(net, "member_outputs") or net.config.n_members < 2:
        raise UsageError(
            f"{option} needs an ensemble model; '{model.path}' has one network. Train one with "
            "--preset realmlp_td --ensemble K (the default, --preset auto, gives one only where "
            "it keeps the recipe)."
        )


def _member_forward(net: Any, X: np.ndarray) -> NDArray[np.floating]:
    """Member outputs in the same zero-padded blocks as `forward` (same bits in the mean)."""
    out = np.empty((net.config.n_members, len(X), net.n_outputs), dtype=net.dtype)
    with one_blas_thread():
        for start, rows, block in _padded_blocks(X):
            out[:, start : start + rows] = net.member_outputs(block, FORWARD_BLOCK)[:, :rows]
    return out


@dataclass
class TrainedModel:
    """A model file brought back to life: network, preprocessing, target encoding, metadata."""

    net: MLP
    preprocessor: Preprocessor
    encoder: TargetEncoder
    metadata: dict[str, Any]
    path: str = ""

    @property
    def task(self) -> str:
        return str(self.metadata["task"])

    @property
    def id_columns(self) -> list[str]:
        return list(self.metadata.get("id_columns", []))

    @property
    def temperature(self) -> float | None:
        """T of `train --calibrate`, already folded into the output layer; None if uncalibrated."""
        found = self.metadata.get("calibration", {}).get("temperature")
        return None if found is None else float(found)

    @property
    def threshold(self) -> float:
        """The decision threshold stored by `train --threshold`, else 0.5."""
        return float(self.metadata.get("threshold", {}).get("value", THRESHOLD))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw table rows -> network inputs, with the stored preprocessing (columns by name)."""
        return self.preprocessor.transform(frame, self.net.dtype)

    def predict_outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Network outputs (probabilities, or standardised regression values) for raw rows,
        bit for bit those of `mlpcli predict`."""
        return forward(self, frame)


def load_trained(path: str | Path) -> TrainedModel:
    """Load and check a model file; every inconsistency is a `ModelFileError`.

    Order matters for hostile files: the metadata is checked, every array's header is checked
    against the shape the metadata implies, then the arrays are read, and only once the
    preprocessing and targets agree with the architecture is the network allocated.
    """
    meta, arrays = modelfile.load_checked(path)
    return trained_from_contents(meta, arrays, path)


def trained_from_contents(
    meta: dict[str, Any], arrays: dict[str, np.ndarray], path: str | Path = ""
) -> TrainedModel:
    """A model from a model file's metadata and arrays (as read, or as `train` produced them:
    the scikit-learn estimators keep these as their state)."""
    from mlpcli.preprocessing import Preprocessor
    from mlpcli.target_encoding import TargetEncoder

    try:
        arch = Architecture.from_dict(meta["architecture"])
        pre = Preprocessor.from_state(meta["preprocessing"], arrays)
        encoder = TargetEncoder.from_state(meta["target"], arrays)
        if pre.n_features_out != arch.n_inputs or encoder.n_outputs != arch.n_outputs:
            raise ModelFileError(
                f"'{path}': the architecture's {arch.n_inputs:,} inputs and "
                f"{arch.n_outputs:,} outputs do not match the stored preprocessing "
                f"({pre.n_features_out:,}) and targets ({encoder.n_outputs:,}); the file is "
                "damaged or inconsistent; retrain it."
            )
        if encoder.task != meta["task"]:
            raise ModelFileError(
                f"'{path}': the metadata says task '{shorten(meta['task'])}' but the target "
                f"encoding is {encoder.task}; the file is damaged; retrain it."
            )
        if "recipe" in meta:
            from mlpcli.nn.recipe import net_from_metadata

            net = cast(MLP, net_from_metadata(meta, arrays))
        else:
            net = MLP.from_architecture(arch, seed=0)
            net.load_state_arrays({k[4:]: v for k, v in arrays.items() if k.startswith("net.")})
        temperature = meta.get("calibration", {}).get("temperature")
        if temperature is not None:  # range checked by the metadata schema
            fold_temperature(net, temperature)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise ModelFileError(
            f"'{path}': the model file is damaged or inconsistent ({shorten(exc, 200)}); "
            "retrain it."
        ) from None
    return TrainedModel(net, pre, encoder, meta, str(path))
