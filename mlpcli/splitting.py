"""Validation splits and cross-validation folds: stratified, grouped or plainly shuffled.

All randomness comes from the caller's `np.random.Generator`, so a seed fixes every split.
Stratified: each class is spread over the sides or folds in proportion to its size.
Grouped (patients, animals, batches): a group is never on both sides of a split, nor split
across folds; with class labels too, groups are placed so that class proportions stay close.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from mlpcli.errors import DataError, UsageError, warn_or_fail

Index = NDArray[np.intp]

#: Random group orders tried when a grouped validation split should also be stratified.
GROUPED_CANDIDATES = 64


# --- shared helpers -----------------------------------------------------------------------------


def _classes(
    y: ArrayLike, n: int, labels: Sequence[str] | None
) -> tuple[Index, NDArray[np.int64], list[str]]:
    """Class codes 0..K-1 per sample, the count of each class and a printable name per class."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {y.shape}")
    classes, codes = np.unique(y, return_inverse=True)
    names = [str(labels[c]) if labels is not None else str(c) for c in classes]
    return codes.astype(np.intp), np.bincount(codes), names


def _groups(groups: ArrayLike, n: int) -> tuple[Index, NDArray[np.int64]]:
    """Group codes 0..G-1 per sample and each group's size; a sample without a group fails."""
    codes, _ = pd.factorize(np.asarray(groups, dtype=object), use_na_sentinel=True)
    if codes.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {codes.shape}")
    n_missing = int((codes < 0).sum())
    if n_missing:
        raise DataError(
            f"The --group column is empty in {n_missing} row(s); give every row a group "
            "or drop those rows."
        )
    return codes.astype(np.intp), np.bincount(codes)


def _sorted_sides(mask: NDArray[np.bool_]) -> tuple[Index, Index]:
    return np.flatnonzero(~mask), np.flatnonzero(mask)


# --- one validation split -----------------------------------------------------------------------


def train_valid_split(
    n: int,
    fraction: float,
    rng: np.random.Generator,
    y: ArrayLike | None = None,
    groups: ArrayLike | None = None,
    labels: Sequence[str] | None = None,
    strict: bool = False,
) -> tuple[Index, Index]:
    """Sorted (train, valid) row indices with about `fraction * n` validation rows.

    `y` (class indices) stratifies: every class gets at least one row on each side, except a
    class with a single sample, which trains (with a warning; an error if `strict`). `groups`
    keeps each group on one side (and uses `y`, if given, to balance classes). `labels[c]`
    names class c in error messages.
    """
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--valid-fraction must be between 0 and 1 (exclusive), got {fraction}.")
    if n < 2:
        raise DataError(f"A validation split needs at least 2 rows, got {n}.")
    if groups is not None:
        mask = _grouped_valid_mask(n, fraction, rng, _groups(groups, n), y, labels)
    elif y is not None:
        mask = _stratified_valid_mask(n, fraction, rng, *_classes(y, n, labels), strict=strict)
    else:
        n_valid = min(max(round(fraction * n), 1), n - 1)
        mask = np.zeros(n, dtype=bool)
        mask[rng.permutation(n)[:n_valid]] = True
    return _sorted_sides(mask)


def _stratified_valid_mask(
    n: int,
    fraction: float,
    rng: np.random.Generator,
    codes: Index,
    counts: NDArray[np.int64],
    names: list[str],
    strict: bool = False,
) -> NDArray[np.bool_]:
    too_small = [name for name, count in zip(names, counts, strict=True) if count < 2]
    if too_small:
        shown = ", ".join(f"'{name}'" for name in too_small[:5])
        more = f" and {len(too_small) - 5} more" if len(too_small) > 5 else ""
        warn_or_fail(
            f"{len(too_small)} class(es) have a single sample ({shown}{more}), so that sample "
            "trains and the class is not validated; give a separate --valid-file or more "
            "samples to validate it.",
            strict,
        )
    # Largest-remainder rounding of fraction * count_c, so the total is round(fraction * n);
    # ties go to random classes. Then every class keeps one row on each side.
    exact = fraction * counts
    quota = np.floor(exact).astype(np.int64)
    extra = round(fraction * n) - int(quota.sum())
    if extra > 0:
        order = np.lexsort((rng.random(len(counts)), -(exact - quota)))
        quota[order[:extra]] += 1
    quota = np.minimum(np.maximum(quota, 1), counts - 1)  # a one-sample class: 0, it trains
    rank = _rank_within(codes, rng)
    chosen: NDArray[np.bool_] = rank < quota[codes]
    return chosen


def _rank_within(codes: Index, rng: np.random.Generator) -> Index:
    """A random rank 0..count_c-1 of each sample within its class, without a loop over samples."""
    perm = rng.permutation(len(codes))
    order = perm[np.argsort(codes[perm], kind="stable")]
    starts = np.concatenate(([0], np.cumsum(np.bincount(codes))[:-1]))
    rank = np.empty(len(codes), dtype=np.intp)
    rank[order] = np.arange(len(codes)) - starts[codes[order]]
    return rank


def _grouped_valid_mask(
    n: int,
    fraction: float,
    rng: np.random.Generator,
    group_info: tuple[Index, NDArray[np.int64]],
    y: ArrayLike | None,
    labels: Sequence[str] | None,
) -> NDArray[np.bool_]:
    group, sizes = group_info
    n_groups = len(sizes)
    if n_groups < 2:
        raise DataError(
            f"The --group column has {n_groups} group(s); a grouped validation split needs at "
            "least 2. Choose another --group or give a --valid-file."
        )
    target = fraction * n
    if y is None:
        n_candidates = 1
        per_group = sizes.reshape(-1, 1).astype(np.float64)
    else:
        codes, counts, _ = _classes(y, n, labels)
        n_candidates = GROUPED_CANDIDATES
        per_group = np.zeros((n_groups, len(counts)))
        np.add.at(per_group, (group, codes), 1.0)
    totals = per_group.sum(axis=0)

    best_score, best_valid = np.inf, np.empty(0, dtype=np.intp)
    for _ in range(n_candidates):
        order = rng.permutation(n_groups)
        # Take the first m groups (1 <= m < G) whose total size is closest to the target.
        cumulative = np.cumsum(sizes[order])[:-1]
        m = int(np.argmin(np.abs(cumulative - target))) + 1
        valid_groups = order[:m]
        in_valid = per_group[valid_groups].sum(axis=0)
        one_sided = np.sum((in_valid == 0) | (in_valid == totals))
        score = (
            float(one_sided)
            + float(np.sum((in_valid / totals - fraction) ** 2))
            + (cumulative[m - 1] / n - fraction) ** 2
        )
        if score < best_score:
            best_score, best_valid = score, valid_groups
    is_valid_group = np.zeros(n_groups, dtype=bool)
    is_valid_group[best_valid] = True
    return is_valid_group[group]


# --- cross-validation folds ---------------------------------------------------------------------


def fold_ids(
    n: int,
    k: int,
    rng: np.random.Generator,
    y: ArrayLike | None = None,
    groups: ArrayLike | None = None,
    labels: Sequence[str] | None = None,
) -> Index:
    """The fold (0..k-1) in which each sample is held out; see `kfold`."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2:
        raise UsageError(f"--folds must be an integer of at least 2, got {k!r}.")
    if k > n:
        raise UsageError(f"--folds {k} is more than the {n} samples; lower --folds.")
    if groups is not None:
        group, sizes = _groups(groups, n)
        if k > len(sizes):
            raise DataError(
                f"--folds {k} is more than the {len(sizes)} groups in the --group column; "
                "lower --folds."
            )
        if y is None:
            group_fold = _grouped_folds(sizes, k, rng)
        else:
            codes, _, _ = _classes(y, n, labels)
            group_fold = _stratified_grouped_folds(group, codes, len(sizes), k, rng)
        fold = group_fold[group]
    elif y is not None:
        codes, counts, names = _classes(y, n, labels)
        smallest = int(np.argmin(counts))
        if counts[smallest] < k:
            raise DataError(
                f"--folds {k} is more than the {counts[smallest]} sample(s) of class "
                f"'{names[smallest]}'; lower --folds or remove the class's rows."
            )
        # Consecutive positions in class-sorted, shuffled order cycle through the folds, so each
        # class splits evenly and fold sizes differ by at most one.
        perm = rng.permutation(n)
        order = perm[np.argsort(codes[perm], kind="stable")]
        fold = np.empty(n, dtype=np.intp)
        fold[order] = np.arange(n) % k
    else:
        fold = np.empty(n, dtype=np.intp)
        fold[rng.permutation(n)] = np.arange(n) % k
    # Relabel folds at random so fold 0 is not always the largest.
    return rng.permutation(k)[fold]


def _grouped_folds(sizes: NDArray[np.int64], k: int, rng: np.random.Generator) -> Index:
    """Largest group first into the currently smallest fold (scikit-learn's GroupKFold)."""
    shuffled = rng.permutation(len(sizes))
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    fold_sizes = np.zeros(k, dtype=np.int64)
    group_fold = np.empty(len(sizes), dtype=np.intp)
    for g in order:
        f = int(np.argmin(fold_sizes))
        group_fold[g] = f
        fold_sizes[f] += sizes[g]
    return group_fold


def _stratified_grouped_folds(
    group: Index, codes: Index, n_groups: int, k: int, rng: np.random.Generator
) -> Index:
    """Greedy placement of groups that keeps each class's share per fold even.

    scikit-learn's StratifiedGroupKFold: groups with the most uneven class counts go first,
    each into the fold that minimises the mean over classes of the std across folds of
    (count in fold / class total); ties go to the smaller fold.
    """
    n_classes = int(codes.max()) + 1
    per_group = np.zeros((n_groups, n_classes))
    np.add.at(per_group, (group, codes), 1.0)
    totals = per_group.sum(axis=0)
    shuffled = rng.permutation(n_groups)
    order = shuffled[np.argsort(-per_group[shuffled].std(axis=1), kind="stable")]
    per_fold = np.zeros((k, n_classes))
    group_fold = np.empty(n_groups, dtype=np.intp)
    diagonal = np.arange(k)
    for g in order:
        trial = np.repeat(per_fold[np.newaxis], k, axis=0)  # trial[i] = folds if g goes to i
        trial[diagonal, diagonal] += per_group[g]
        spread = (trial / totals).std(axis=1).mean(axis=1)
        fold_size = per_fold.sum(axis=1)
        ties = np.flatnonzero(np.isclose(spread, spread.min()))
        f = int(ties[np.argmin(fold_size[ties])])
        group_fold[g] = f
        per_fold[f] += per_group[g]
    if np.bincount(group_fold, minlength=k).min() == 0:
        # Rare with k <= n_groups, but an empty fold is useless: balance sizes instead.
        return _grouped_folds(np.bincount(group, minlength=n_groups), k, rng)
    return group_fold


def kfold(
    n: int,
    k: int,
    rng: np.random.Generator,
    y: ArrayLike | None = None,
    groups: ArrayLike | None = None,
    labels: Sequence[str] | None = None,
) -> list[tuple[Index, Index]]:
    """K (train, held-out) pairs of sorted indices; every sample is held out exactly once.

    Stratified with `y` (class indices), grouped with `groups` (a group never split, fold sizes
    balanced; classes balanced too when `y` is also given), shuffled otherwise.
    """
    fold = fold_ids(n, k, rng, y=y, groups=groups, labels=labels)
    return [_sorted_sides(fold == f) for f in range(k)]
