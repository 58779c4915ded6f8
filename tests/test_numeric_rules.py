"""numeric_rules: the exact windowed median against NumPy's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from mlpcli.numeric_rules import WINDOW_MEDIAN_ROWS, exact_median

RNG = np.random.default_rng(16)
N = WINDOW_MEDIAN_ROWS * 3


def _columns() -> dict[str, np.ndarray]:
    normal = RNG.standard_normal(N)
    return {
        "normal-float32": normal.astype(np.float32).astype(np.float64),
        "normal-odd": normal[:-1],
        "sorted": np.sort(normal),
        "reversed": np.sort(normal)[::-1].copy(),
        "few-levels": RNG.integers(0, 5, N).astype(np.float64),
        "two-levels-even-split": np.repeat([1.0, 2.0], N // 2),
        "constant": np.full(N, 3.25),
        "skewed": RNG.lognormal(0.0, 3.0, N),
        "outliers": np.r_[normal[: N - 50], np.full(50, 1e300)],
        "mostly-zero": np.r_[np.zeros(N - 10), RNG.standard_normal(10)],
        "signed-zeros": np.r_[np.full(N // 2, -0.0), np.zeros(N // 2), [1.0]],
        "short": normal[: WINDOW_MEDIAN_ROWS - 1],
        "just-long-enough": normal[:WINDOW_MEDIAN_ROWS],
        "large": RNG.standard_normal(20 * N),
    }


@pytest.mark.parametrize(("name", "x"), list(_columns().items()), ids=list(_columns()))
def test_exact_median_equals_numpy_bit_for_bit(name: str, x: np.ndarray) -> None:
    expected = float(np.median(x))
    got = exact_median(x)
    assert np.float64(got).tobytes() == np.float64(expected).tobytes()


def test_exact_median_bracket_missing_falls_back() -> None:
    """A sample that misses the middle (periodic values aligned with the sampling step) still
    gives NumPy's answer."""
    step = N // 4096
    x = np.where(np.arange(N) % step == 0, -1e9, RNG.standard_normal(N))
    assert exact_median(x) == float(np.median(x))


@pytest.mark.parametrize("seed", range(20))
def test_exact_median_random_lengths(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(WINDOW_MEDIAN_ROWS, 4 * WINDOW_MEDIAN_ROWS))
    x = np.round(rng.standard_normal(n), int(rng.integers(0, 4)))  # ties at every rounding
    assert np.float64(exact_median(x)).tobytes() == np.float64(np.median(x)).tobytes()
