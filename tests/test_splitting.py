"""Validation splits and folds: proportions, groups kept whole, every sample held out once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mlpcli.errors import DataError, UsageError
from mlpcli.splitting import fold_ids, kfold, train_valid_split


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def assert_partition(train: np.ndarray, valid: np.ndarray, n: int) -> None:
    assert np.all(np.diff(train) > 0) and np.all(np.diff(valid) > 0)  # sorted, no repeats
    np.testing.assert_array_equal(np.sort(np.concatenate([train, valid])), np.arange(n))


# --- train_valid_split --------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5], ids=str)
def test_fraction_outside_zero_one_is_a_usage_error(fraction: float) -> None:
    with pytest.raises(UsageError, match=r"--valid-fraction .*got"):
        train_valid_split(10, fraction, rng())


def test_plain_split_sizes_and_partition() -> None:
    train, valid = train_valid_split(101, 0.2, rng())
    assert_partition(train, valid, 101)
    assert len(valid) == 20


def test_stratified_split_keeps_class_proportions() -> None:
    y = np.repeat([0, 1, 2], [60, 30, 10])
    train, valid = train_valid_split(100, 0.2, rng(), y=y)
    assert_partition(train, valid, 100)
    np.testing.assert_array_equal(np.bincount(y[valid]), [12, 6, 2])


def test_stratified_split_gives_every_class_both_sides() -> None:
    y = np.repeat([0, 1, 2, 3], [2, 2, 3, 50])
    train, valid = train_valid_split(len(y), 0.1, rng(), y=y)
    assert (np.bincount(y[valid], minlength=4) >= 1).all()
    assert (np.bincount(y[train], minlength=4) >= 1).all()


def test_class_with_one_sample_trains_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    y = np.array([0, 0, 0, 1, 2, 2])
    with caplog.at_level("WARNING", logger="mlpcli"):
        train, valid = train_valid_split(6, 0.3, rng(), y=y, labels=["common", "rare", "other"])
    assert 3 in train and set(y[valid]) == {0, 2}
    assert caplog.messages == [
        "1 class(es) have a single sample ('rare'), so that sample trains and the class is not "
        "validated; give a separate --valid-file or more samples to validate it."
    ]
    with pytest.raises(DataError, match=r"single sample \('rare'\).*because of --strict"):
        train_valid_split(6, 0.3, rng(), y=y, labels=["common", "rare", "other"], strict=True)


def test_grouped_split_never_shares_a_group() -> None:
    groups = np.repeat([f"mouse{i}" for i in range(20)], 15)
    train, valid = train_valid_split(len(groups), 0.25, rng(), groups=groups)
    assert_partition(train, valid, len(groups))
    assert not set(groups[train]) & set(groups[valid])
    assert len(valid) == 75  # 5 whole groups of 15 is exactly 25%


def test_grouped_split_with_classes_gives_every_class_both_sides() -> None:
    # Mice-like: 72 animals x 15 replicates, each animal in one of 8 classes.
    animal_class = np.arange(72) % 8
    groups = np.repeat(np.arange(72), 15)
    y = np.repeat(animal_class, 15)
    train, valid = train_valid_split(len(y), 0.2, rng(3), y=y, groups=groups)
    assert not set(groups[train]) & set(groups[valid])
    assert (np.bincount(y[valid], minlength=8) > 0).all()
    assert (np.bincount(y[train], minlength=8) > 0).all()


def test_grouped_split_needs_two_groups() -> None:
    with pytest.raises(DataError, match=r"--group column has 1 group"):
        train_valid_split(5, 0.2, rng(), groups=["p1"] * 5)


def test_sample_without_group_is_an_error() -> None:
    with pytest.raises(DataError, match=r"--group column is empty in 1 row"):
        train_valid_split(4, 0.5, rng(), groups=np.array(["a", None, "b", "b"], dtype=object))


@pytest.mark.parametrize(
    "kind", ["plain", "stratified", "grouped"], ids=["plain", "stratified", "grouped"]
)
def test_split_is_determined_by_the_seed(kind: str) -> None:
    y = np.arange(200) % 3 if kind == "stratified" else None
    groups = np.arange(200) // 4 if kind == "grouped" else None
    first = train_valid_split(200, 0.3, rng(7), y=y, groups=groups)
    again = train_valid_split(200, 0.3, rng(7), y=y, groups=groups)
    other = train_valid_split(200, 0.3, rng(8), y=y, groups=groups)
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


# --- kfold --------------------------------------------------------------------------------------


def held_out(folds: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """How often each sample is held out; also checks each pair partitions 0..n-1."""
    for train, test in folds:
        assert_partition(train, test, n)
    return np.bincount(np.concatenate([test for _, test in folds]), minlength=n)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 60), st.integers(2, 10), st.integers(0, 2**32 - 1))
def test_plain_kfold_holds_each_sample_out_once(n: int, k: int, seed: int) -> None:
    assume(k <= n)
    folds = kfold(n, k, rng(seed))
    assert len(folds) == k
    np.testing.assert_array_equal(held_out(folds, n), 1)
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1


folds_and_class_sizes = st.integers(2, 5).flatmap(
    lambda k: st.tuples(st.just(k), st.lists(st.integers(k, 20), min_size=1, max_size=5))
)


@settings(max_examples=60, deadline=None)
@given(folds_and_class_sizes, st.integers(0, 2**32 - 1))
def test_stratified_kfold_spreads_every_class_evenly(
    k_and_sizes: tuple[int, list[int]], seed: int
) -> None:
    k, class_sizes = k_and_sizes
    y = rng(seed).permutation(np.repeat(np.arange(len(class_sizes)), class_sizes))
    folds = kfold(len(y), k, rng(seed), y=y)
    np.testing.assert_array_equal(held_out(folds, len(y)), 1)
    per_fold = np.array([np.bincount(y[test], minlength=len(class_sizes)) for _, test in folds])
    assert (per_fold.max(axis=0) - per_fold.min(axis=0) <= 1).all()
    sizes = per_fold.sum(axis=1)
    assert sizes.max() - sizes.min() <= 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 14), min_size=10, max_size=80),
    st.integers(2, 5),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_grouped_kfold_never_splits_a_group(
    groups: list[int], k: int, stratify: bool, seed: int
) -> None:
    g = np.asarray(groups)
    assume(len(np.unique(g)) >= k)
    y = g % 3 if stratify else None
    folds = kfold(len(g), k, rng(seed), y=y, groups=g)
    np.testing.assert_array_equal(held_out(folds, len(g)), 1)
    for train, test in folds:
        assert len(test) > 0
        assert not set(g[train]) & set(g[test])


def test_grouped_kfold_balances_fold_sizes() -> None:
    # Sizes 5, 4, 3, 2, 1, 1 into 2 folds: largest first into the lighter fold gives 8 and 8.
    groups = np.repeat(list("abcdef"), [5, 4, 3, 2, 1, 1])
    folds = kfold(len(groups), 2, rng(), groups=groups)
    assert sorted(len(test) for _, test in folds) == [8, 8]


def test_stratified_grouped_kfold_spreads_classes() -> None:
    groups = np.repeat(np.arange(72), 15)
    y = np.repeat(np.arange(72) % 8, 15)  # 9 animals per class
    fold = fold_ids(len(y), 3, rng(2), y=y, groups=groups)
    per_fold = np.array([np.bincount(y[fold == f], minlength=8) for f in range(3)]) // 15
    np.testing.assert_array_equal(per_fold, 3)  # 9 animals per class -> 3 per fold


@pytest.mark.parametrize("k", [1, 0, 21], ids=["one", "zero", "more-than-n"])
def test_bad_fold_counts_name_folds(k: int) -> None:
    with pytest.raises(UsageError, match=r"--folds"):
        kfold(20, k, rng())


def test_more_folds_than_smallest_class_names_class() -> None:
    y = np.repeat([0, 1], [10, 3])
    with pytest.raises(DataError, match=r"--folds 4 is more than the 3 sample\(s\) of class 'b'"):
        kfold(13, 4, rng(), y=y, labels=["a", "b"])


def test_more_folds_than_groups_names_folds_and_group() -> None:
    with pytest.raises(DataError, match=r"--folds 4 is more than the 3 groups in the --group"):
        kfold(9, 4, rng(), groups=np.repeat([1, 2, 3], 3))


@pytest.mark.parametrize(
    "kind", ["plain", "stratified", "grouped"], ids=["plain", "stratified", "grouped"]
)
def test_kfold_is_determined_by_the_seed(kind: str) -> None:
    y = np.arange(90) % 3 if kind == "stratified" else None
    groups = np.arange(90) // 3 if kind == "grouped" else None
    first = fold_ids(90, 5, rng(11), y=y, groups=groups)
    np.testing.assert_array_equal(fold_ids(90, 5, rng(11), y=y, groups=groups), first)
    assert not np.array_equal(fold_ids(90, 5, rng(12), y=y, groups=groups), first)
