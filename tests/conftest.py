"""Shared fixtures: a seeded generator and the central-difference gradient helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

Array = NDArray[np.float64]


class PickleMarker:
    """Unpickling this creates a file: proof that a loader executed code from a model file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.path,))


SEED = 20240611


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator per test, so tests do not depend on each other's draws."""
    return np.random.default_rng(SEED)


def _central_difference(f: Callable[[], float], x: Array, eps: float = 1e-6) -> Array:
    """d f / d x by (f(x + eps) - f(x - eps)) / (2 eps), perturbing `x` in place.

    `x` must be the very array `f` reads (a parameter view, an input), float64 so the O(eps^2)
    truncation and O(1e-16 / eps) rounding errors stay far below the 1e-6 the tests demand.
    """
    assert x.dtype == np.float64, "gradient checks run in float64"
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous so the perturbation reaches f"
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        f_plus = f()
        flat[i] = saved - eps
        f_minus = f()
        flat[i] = saved
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def _relative_error(analytic: Array, numeric: Array) -> float:
    """||a - n|| / max(||a|| + ||n||, tiny): scale-free, and 0 when both are exactly zero."""
    diff = float(np.linalg.norm(np.asarray(analytic) - np.asarray(numeric)))
    scale = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
    return diff / max(scale, 1e-300)


@pytest.fixture
def central_difference() -> Callable[..., Array]:
    return _central_difference


@pytest.fixture
def relative_error() -> Callable[[Array, Array], float]:
    return _relative_error
