"""How preprocessing treats a numeric column, fitted on its training values: impute, scale and
clip, each a registry (`IMPUTERS`, `SCALERS`, `CLIPPERS`) over the column's statistics
(`ColumnStats`: exact in memory with `ArrayStats`, from one pass over chunks with
`streaming.NumericStats`).

- impute:  missing x <- median | mean | fill_value of the training values
- scale:   x <- (x - center) / scale            standard: mean, std (ddof 0)
                                                minmax:   min, max - min      (to [0, 1])
                                                robust:   median, q75 - q25
                                                robust_range: median, q75 - q25, or
                                                          (max - min) / 2 where q75 = q25
                                                none:     0, 1
- clip:    x <- x / sqrt(1 + (x/3)^2)          smooth (optional; none by default)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


class ColumnStats(Protocol):
    """What imputers and scalers read of a column: `ArrayStats` computes it from the values in
    memory, `streaming.NumericStats` from one pass over chunks (quantiles approximate there)."""

    def mean(self) -> float: ...
    def std(self) -> float: ...
    def min(self) -> float: ...
    def max(self) -> float: ...
    def median(self) -> float: ...
    def percentiles(self, q: Sequence[float]) -> Array: ...


class ArrayStats:
    """Exact statistics of a column held in memory (NumPy's, as fitting always computed them)."""

    def __init__(self, x: Array) -> None:
        self.x = x

    def mean(self) -> float:
        return float(np.mean(self.x))

    def std(self) -> float:
        return float(np.std(self.x))

    def min(self) -> float:
        return float(np.min(self.x))

    def max(self) -> float:
        return float(np.max(self.x))

    def median(self) -> float:
        return float(np.median(self.x))

    def percentiles(self, q: Sequence[float]) -> Array:
        return np.percentile(self.x, q)


def _impute_median(values: ColumnStats, fill_value: float) -> float:
    return values.median()


def _impute_mean(values: ColumnStats, fill_value: float) -> float:
    return values.mean()


def _impute_constant(values: ColumnStats, fill_value: float) -> float:
    return float(fill_value)


#: name -> f(observed training values, fill_value) -> value that replaces a missing cell.
IMPUTERS: dict[str, Callable[[ColumnStats, float], float]] = {
    "median": _impute_median,
    "mean": _impute_mean,
    "constant": _impute_constant,
}


def _scale_standard(x: ColumnStats) -> tuple[float, float]:
    return x.mean(), x.std()


def _scale_minmax(x: ColumnStats) -> tuple[float, float]:
    low, high = x.min(), x.max()
    return low, high - low


def _scale_robust(x: ColumnStats) -> tuple[float, float]:
    q25, q50, q75 = x.percentiles([25.0, 50.0, 75.0])
    return float(q50), float(q75 - q25)


def _scale_robust_range(x: ColumnStats) -> tuple[float, float]:
    q25, q50, q75 = x.percentiles([25.0, 50.0, 75.0])
    spread = float(q75 - q25)
    if spread == 0.0:  # a mostly-constant column (e.g. sparse counts): half its range instead
        spread = 0.5 * (x.max() - x.min())
    return float(q50), spread


def _scale_none(x: ColumnStats) -> tuple[float, float]:
    return 0.0, 1.0


#: name -> f(imputed training column) -> (center, scale); output is (x - center) / scale.
SCALERS: dict[str, Callable[[ColumnStats], tuple[float, float]]] = {
    "standard": _scale_standard,
    "minmax": _scale_minmax,
    "robust": _scale_robust,
    "robust_range": _scale_robust_range,
    "none": _scale_none,
}


class Clipper:
    """An elementwise map applied after scaling, with its derivative (for explanations)."""

    name: ClassVar[str]

    def __call__(self, x: Array) -> Array:
        raise NotImplementedError

    def derivative(self, x: Array) -> Array:
        raise NotImplementedError


class NoClip(Clipper):
    name = "none"

    def __call__(self, x: Array) -> Array:
        return x

    def derivative(self, x: Array) -> Array:
        return np.ones_like(x)


class SmoothClip(Clipper):
    """x / sqrt(1 + (x/3)^2): about x for |x| << 3, tending to +-3; derivative
    (1 + (x/3)^2)^(-3/2)."""

    name = "smooth"

    def __call__(self, x: Array) -> Array:
        return x / np.sqrt(1.0 + np.square(x / 3.0))

    def derivative(self, x: Array) -> Array:
        return (1.0 + np.square(x / 3.0)) ** -1.5


CLIPPERS: dict[str, type[Clipper]] = {cls.name: cls for cls in (NoClip, SmoothClip)}
