"""Benchmark cases and their synthetic data, shared by the driver and the worker processes.

Every worker regenerates a case's data from the same seed, so all implementations train on
identical arrays without passing them between processes.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

DATA_SEED = 20240611


@dataclass(frozen=True)
class Case:
    """One training job, run identically by every implementation."""

    name: str
    title: str
    task: str  # "multiclass" | "regression"
    n_samples: int
    n_features: int
    n_outputs: int  # classes for multiclass, targets for regression
    hidden: tuple[int, ...]
    batch_size: int | None  # None: the full batch
    epochs: int
    optimizer: str = "adam"  # "adam" | "rprop"
    lr: float = 1e-3

    @property
    def batch_text(self) -> str:
        return "full" if self.batch_size is None else str(self.batch_size)

    def describe(self) -> str:
        hidden = ",".join(map(str, self.hidden))
        return (
            f"{self.n_samples:,} x {self.n_features:,}, {self.task} ({self.n_outputs} "
            f"{'classes' if self.task == 'multiclass' else 'output'}), hidden ({hidden}), relu, "
            f"{self.optimizer} lr {self.lr:g}, batch {self.batch_text}, {self.epochs} epoch"
            f"{'s' if self.epochs != 1 else ''}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def gemm_flop(self) -> float:
        """FLOP of the matrix products of all epochs: 2 n k_in k_out forward, twice that
        backward (dW and dX), except that the first layer's dX is never needed."""
        sizes = [self.n_features, *self.hidden, self.n_outputs]
        pairs = list(itertools.pairwise(sizes))
        per_sample = sum(6 * a * b for a, b in pairs) - 2 * pairs[0][0] * pairs[0][1]
        return float(per_sample) * self.n_samples * self.epochs


CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case(
            "main",
            "Main case",
            "multiclass",
            100_000,
            100,
            3,
            (256, 128),
            batch_size=256,
            epochs=1,
        ),
        Case(
            "regression",
            "Regression",
            "regression",
            100_000,
            100,
            1,
            (256, 128),
            batch_size=256,
            epochs=1,
        ),
        Case("small", "Small data", "multiclass", 1_000, 20, 3, (64, 32), 32, epochs=200),
        Case("wide", "Wide data", "multiclass", 200, 5_000, 3, (64, 32), 32, epochs=200),
        Case(
            "batch32",
            "Batch 32",
            "multiclass",
            100_000,
            100,
            3,
            (256, 128),
            batch_size=32,
            epochs=1,
        ),
        Case(
            "rprop",
            "Full-batch rprop",
            "multiclass",
            10_000,
            100,
            3,
            (256, 128),
            batch_size=None,
            epochs=50,
            optimizer="rprop",
            lr=0.01,
        ),
    )
}


@dataclass
class CaseData:
    X: NDArray[np.float32]  # (n, d) features
    y: NDArray[Any]  # class indices (int64) or targets (float32, (n, n_outputs))
    Y: NDArray[np.float32]  # one-hot classes, or the targets: what mlpcli's engine trains on


def make_data(case: Case, seed: int = DATA_SEED) -> CaseData:
    """Standard normal features and a learnable target: a random one-hidden-layer teacher."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((case.n_samples, case.n_features), dtype=np.float32)
    A = rng.standard_normal((case.n_features, 16)).astype(np.float32) / np.sqrt(case.n_features)
    H = np.tanh(X @ A)
    B = rng.standard_normal((16, case.n_outputs)).astype(np.float32)
    T = H @ B
    if case.task == "multiclass":
        y = T.argmax(axis=1).astype(np.int64)
        Y = np.zeros((case.n_samples, case.n_outputs), dtype=np.float32)
        Y[np.arange(case.n_samples), y] = 1.0
        return CaseData(X, y, Y)
    T += 0.1 * rng.standard_normal(T.shape).astype(np.float32)
    T -= T.mean(axis=0)
    T /= T.std(axis=0)
    return CaseData(X, T, T)
