"""Streaming preprocessing statistics against exact in-memory values: equal to float tolerance
for the exact ones, within the sketch's stated rank error for quantiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpcli.errors import DataError
from mlpcli.numeric_rules import IMPUTERS, SCALERS
from mlpcli.preprocessing import Preprocessor
from mlpcli.streaming import QuantileSketch, TableSummary, summarise


def chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [frame.iloc[i : i + size] for i in range(0, len(frame), size)]


def rank_window(data: np.ndarray, q: float, error: int) -> tuple[float, float]:
    """The values between which a quantile with rank error `error` must lie."""
    s = np.sort(data)
    j = int(np.floor(q * (len(s) - 1)))
    return s[max(0, j - error)], s[min(len(s) - 1, j + 1 + error)]


@pytest.mark.parametrize("distribution", ["normal", "lognormal", "ties", "sorted"])
def test_sketch_quantiles_lie_within_the_stated_rank_error(distribution: str) -> None:
    rng = np.random.default_rng(1)
    n = 300_000
    data = {
        "normal": rng.normal(size=n),
        "lognormal": rng.lognormal(0, 2, size=n),
        "ties": rng.integers(0, 7, size=n).astype(float),
        "sorted": np.sort(rng.normal(size=n)),  # adversarial order for compactors
    }[distribution]
    sketch = QuantileSketch(k=1024)
    for start in range(0, n, 7_001):
        sketch.update(data[start : start + 7_001])
    assert sketch.n == n and not sketch.exact
    # The bound is the one the docstring states, and it is small: under 2% of n at k = 1024.
    assert 0 < sketch.rank_error < 0.02 * n
    qs = np.array([0.0, 1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0, 100.0])
    found = sketch.percentiles(qs)
    for q, value in zip(qs / 100, found, strict=True):
        low, high = rank_window(data, q, sketch.rank_error)
        assert low <= value <= high, (q, value, low, high)
    low, high = rank_window(data, 0.5, sketch.rank_error)
    assert low <= sketch.median() <= high
    # Memory stays bounded: about k values per level, log2(n / k) levels.
    held = sum(len(level) for level in sketch.levels)
    assert held <= 1024 * len(sketch.levels) and len(sketch.levels) <= 12


def test_the_bound_is_not_slack_by_orders_of_magnitude() -> None:
    """The observed worst rank error is a sizeable share of the bound (a bound of n would make
    the test above pass trivially)."""
    rng = np.random.default_rng(2)
    data = rng.normal(size=200_000)
    sketch = QuantileSketch(k=512)
    for start in range(0, len(data), 5_000):
        sketch.update(data[start : start + 5_000])
    s = np.sort(data)
    ranks = np.arange(0, len(s), 997)
    got = sketch.order_statistics(ranks)
    true_rank = np.searchsorted(s, got, side="left")
    worst = int(np.abs(true_rank - ranks).max())
    assert worst <= sketch.rank_error
    assert worst >= sketch.rank_error / 50


def test_a_small_sketch_is_exact_and_equals_numpy() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=5_000)
    sketch = QuantileSketch()
    for part in np.array_split(data, 7):
        sketch.update(part)
    sketch.add_mass(0.25, 40)
    full = np.concatenate([data, np.full(40, 0.25)])
    assert sketch.exact
    qs = [0.0, 10.0, 25.0, 50.0, 75.0, 100.0]
    np.testing.assert_array_equal(sketch.percentiles(qs), np.percentile(full, qs))
    assert sketch.median() == np.median(full)


def test_merged_sketches_keep_their_bound() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=60_000), rng.exponential(size=40_000)
    left, right = QuantileSketch(k=512), QuantileSketch(k=512)
    left.update(a)
    right.update(b)
    left.merge(right)
    data = np.concatenate([a, b])
    for q in (0.1, 0.5, 0.9):
        low, high = rank_window(data, q, left.rank_error)
        assert low <= left.percentiles([100 * q])[0] <= high


def cohort(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(60, 12, n),
            # A large offset: the textbook sum of squares loses every digit of the variance.
            "signal": 1e7 + rng.normal(0, 1e-2, n),
            "count": rng.poisson(3, n).astype(float),
            "site": rng.choice(["a", "b", "c", "rare"], n, p=[0.5, 0.3, 0.199, 0.001]),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    frame.loc[rng.random(n) < 0.05, "site"] = None
    return frame.astype({"age": np.float32, "count": np.float32})


@pytest.mark.parametrize("chunk", [pytest.param(1, marks=pytest.mark.slow), 97, 5_000])
def test_exact_statistics_equal_the_in_memory_ones(chunk: int) -> None:
    frame = cohort(3_000 if chunk == 1 else 20_000)
    summary = summarise(chunks(frame, chunk), list(frame.columns), ["site"])
    for name in ["age", "signal", "count"]:
        stats, values = summary.stats[name], frame[name].to_numpy(np.float64)
        observed = values[~np.isnan(values)]
        assert (stats.count, stats.n_missing) == (len(observed), len(values) - len(observed))
        assert stats.mean() == pytest.approx(np.mean(observed), rel=1e-12)
        assert stats.std() == pytest.approx(np.std(observed), rel=1e-6)
        assert (stats.min(), stats.max()) == (observed.min(), observed.max())
    signal = frame["signal"].to_numpy()
    naive = np.mean(signal**2) - np.mean(signal) ** 2  # what Chan's update avoids
    assert naive != pytest.approx(np.var(signal), rel=0.5)
    site = frame["site"]
    assert dict(summary.levels["site"]) == site.value_counts().to_dict()
    assert summary.missing_levels["site"] == int(site.isna().sum())
    assert summary.n_rows == len(frame)


@pytest.mark.parametrize("scale", sorted(SCALERS), ids=str)
@pytest.mark.parametrize("impute", sorted(IMPUTERS), ids=str)
def test_fit_summary_equals_fit_on_small_tables(impute: str, scale: str) -> None:
    """Below the sketch size every statistic is exact: the fitted state equals in-memory
    fitting to float tolerance, levels and pooling included."""
    frame = cohort(4_000, seed=5)
    options = {"impute": impute, "scale": scale, "missing_indicators": True, "min_level_count": 5}
    memory = Preprocessor(**options).fit(frame, list(frame.columns), ["site"])  # type: ignore[arg-type]
    summary = summarise(chunks(frame, 333), list(frame.columns), ["site"])
    streamed = Preprocessor(**options).fit_summary(summary)  # type: ignore[arg-type]
    assert streamed.feature_names_out == memory.feature_names_out
    for part in ("impute_values_", "centers_", "scales_"):
        np.testing.assert_allclose(getattr(streamed, part), getattr(memory, part), rtol=1e-6)
    np.testing.assert_allclose(streamed.transform(frame), memory.transform(frame), atol=1e-5)


def test_fit_summary_quantiles_on_a_large_table_are_within_the_bound() -> None:
    frame = cohort(120_000, seed=6)
    summary = summarise(chunks(frame, 10_000), list(frame.columns), ["site"], k=1024)
    pre = Preprocessor(impute="median", scale="robust").fit_summary(summary)
    values = frame["age"].to_numpy(np.float64)
    observed = values[~np.isnan(values)]
    stats = summary.stats["age"]
    assert not stats.sketch.exact
    low, high = rank_window(observed, 0.5, stats.sketch.rank_error)
    assert low <= pre.impute_values_[0] <= high
    # The median moved by a tiny share of the spread: what the bound means for a user.
    assert abs(pre.impute_values_[0] - np.median(observed)) < 0.01 * np.std(observed)


def test_log1p_is_applied_before_the_statistics_and_checks_negatives() -> None:
    frame = pd.DataFrame({"x": [0.0, 1.0, 3.0, np.nan, 7.0]})
    memory = Preprocessor(log1p=True).fit(frame, ["x"])
    streamed = Preprocessor(log1p=True).fit_summary(summarise([frame], ["x"], log1p=True))
    np.testing.assert_allclose(streamed.centers_, memory.centers_)
    np.testing.assert_allclose(streamed.impute_values_, memory.impute_values_)
    with pytest.raises(DataError, match="Column 'x' has negative values"):
        summarise([frame.assign(x=-frame["x"])], ["x"], log1p=True)


def test_an_all_missing_column_is_the_same_error_as_in_memory() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan], "y": [1.0, 2.0]})
    with pytest.raises(DataError, match="Column 'x' has no values in the training rows"):
        Preprocessor().fit_summary(summarise([frame], ["x", "y"]))
    summary = TableSummary(["x"])
    with pytest.raises(DataError, match="No training rows"):
        Preprocessor().fit_summary(summary)


def test_the_sketch_keeps_no_view_of_a_compacted_level() -> None:
    """A compacted level keeps its odd value out as a copy: a view would hold the whole sorted
    level (a block's worth of values per column) for as long as the sketch lives."""
    sketch = QuantileSketch(k=64)
    sketch.update(np.random.default_rng(0).normal(size=65_537))
    assert all(level.base is None for level in sketch.levels)
    assert sum(level.size for level in sketch.levels) < 4 * 64


def test_a_frame_is_summarised_in_column_slabs_as_one_block() -> None:
    """`update` converts a few numeric columns at a time (memory); the statistics are those
    of the whole block at once: means, ranges and quantiles exactly, spreads to rounding."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 19)) * 100 + 7
    X[rng.random(X.shape) < 0.05] = np.nan
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(19)])
    slabs, whole = TableSummary(list(frame.columns)), TableSummary(list(frame.columns))
    slabs.update(frame)
    whole.update_numeric(X)
    assert slabs.n_rows == whole.n_rows == 5000
    for name in frame.columns:
        a, b = slabs.stats[name], whole.stats[name]
        assert (a.count, a.n_missing, a.mean(), a.min(), a.max(), a.median()) == (
            b.count, b.n_missing, b.mean(), b.min(), b.max(), b.median()
        )  # fmt: skip
        assert a.m2 == pytest.approx(b.m2, rel=1e-12)
