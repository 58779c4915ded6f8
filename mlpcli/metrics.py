"""Evaluation metrics: pure NumPy functions with scikit-learn's definitions, one registry, reports.

Every single metric is `function(y_true, y_pred) -> float`; what `y_pred` holds is the metric's
`needs`:
- "labels": predicted class indices (n,), or a 0/1 matrix (n, t) for multilabel targets;
- "proba":  class probabilities (n, k) (binary also (n,) = P(class 1)), or (n, t) per target;
- "values": regression predictions (n,) or (n, t); multi-output scores are the uniform average
  of the per-output scores (scikit-learn's multioutput="uniform_average").

Definitions (scikit-learn's, with zero_division=0):
- precision_c = tp_c / (tp_c + fp_c), recall_c = tp_c / (tp_c + fn_c),
  f1_c = 2 tp_c / (2 tp_c + fp_c + fn_c); 0 where the denominator is 0 (zero_division=0);
  macro = mean over classes, weighted = mean weighted by support (true count).
- balanced_accuracy = mean recall over the classes that occur in y_true.
- mcc (multiclass, Gorodkin's R_K): (c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)), c = trace(C),
  s = n, t/p = true/predicted class counts; 0 when the denominator is 0.
- roc_auc = Mann-Whitney U / (n_pos n_neg) with average ranks, which equals the trapezoid area
  under the ROC curve with ties; multiclass = macro one-vs-rest. Undefined with one class.
- average_precision = sum_n (R_n - R_{n-1}) P_n over distinct thresholds (no interpolation).
- log_loss = -mean_i log p_i[y_i], p clipped to [eps, 1 - eps], eps of the probabilities' dtype.
- brier: binary = mean_i (p_i - y_i)^2 on the positive class; multiclass = mean_i sum_k
  (p_ik - y_ik)^2 (scikit-learn's brier_score_loss, scale_by_half="auto").
- r2 = 1 - SS_res / SS_tot and explained_variance = 1 - Var(y - p) / Var(y), both with
  force_finite: a constant y_true scores 1.0 if predicted perfectly, else 0.0.
- pearson = cov / (sd sd); spearman = pearson of average ranks; undefined for a constant column.

Undefined values raise `UndefinedMetricError`; `metric_reports` turns them into None plus a
note, so
`json.dumps(report, allow_nan=False)` always works.

About 650 lines on purpose: every metric function and the one registry that lists them
(`METRICS`, `get`, `for_task`) share the input checks above; the per-task reports are
`metric_reports`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mlpcli.errors import DataError, choose

Floats = NDArray[np.float64]
Ints = NDArray[np.intp]
Bools = NDArray[np.bool_]
Needs = Literal["labels", "proba", "values"]

BRIER_DEFINITIONS = {
    "binary": "mean over samples of (p - y)^2, p = probability of the positive class",
    "multiclass": "mean over samples of sum over classes k of (p_k - y_k)^2, y one-hot",
}


class UndefinedMetricError(DataError):
    """A metric with no value on these rows, such as ROC AUC when y_true holds one class."""

    def __init__(self, metric: str, reason: str) -> None:
        super().__init__(f"{metric} is undefined: {reason}")
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Input checks


def _pair(y_true: Any, y_pred: Any, what: str) -> tuple[NDArray[Any], NDArray[Any]]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim == 0 or p.ndim == 0 or len(t) != len(p):
        raise DataError(
            f"y_true has {t.shape[0] if t.ndim else 0} rows but the {what} have "
            f"{p.shape[0] if p.ndim else 0}; pass one prediction per row."
        )
    if len(t) == 0:
        raise DataError("No rows to evaluate: y_true is empty.")
    return t, p


def _same_shape(t: NDArray[Any], p: NDArray[Any], what: str) -> None:
    if t.shape != p.shape or t.ndim > 2:
        raise DataError(
            f"y_true has shape {t.shape} but the {what} have shape {p.shape}; "
            "pass one column per target."
        )


def indicator(y: NDArray[Any], what: str) -> Bools:
    """A 0/1 multilabel matrix as booleans."""
    if y.dtype != np.bool_ and not ((y == 0) | (y == 1)).all():
        raise DataError(f"{what} of a multilabel target must hold only 0 and 1.")
    return y.astype(bool, copy=False)


def class_indices(y: NDArray[Any], n_classes: int) -> Ints:
    """Integer class indices in [0, n_classes), from integer or integral float input."""
    integral = np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_
    if not integral and not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
        raise DataError(f"y_true must hold class indices 0..{n_classes - 1}, not {y.dtype}.")
    out = y.astype(np.intp, copy=False)
    bad = (out < 0) | (out >= n_classes)
    if bad.any():
        raise DataError(
            f"y_true holds class index {out[bad][0]}, but the probabilities have only "
            f"{n_classes} columns; pass one probability column per class."
        )
    return out


def only_1d(t: NDArray[Any], metric: str) -> None:
    if t.ndim != 1:
        raise DataError(
            f"'{metric}' needs one column of class labels, not a {t.shape[1]}-column "
            "multilabel target; choose a metric or report made for multilabel targets."
        )


def finite(a: NDArray[Any], what: str) -> None:
    if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
        row = int(np.flatnonzero(~np.isfinite(a).reshape(len(a), -1).all(axis=1))[0])
        raise DataError(f"The {what} hold NaN or infinity (row {row}); check the model.")


def proba_pair(y_true: Any, proba: Any) -> tuple[NDArray[Any], Floats]:
    """Checked (y_true, probabilities); probabilities kept in their own float dtype."""
    t, P = _pair(y_true, proba, "probabilities")
    P = P if np.issubdtype(P.dtype, np.floating) else P.astype(np.float64)
    finite(P, "probabilities")
    if P.min() < 0 or P.max() > 1:
        raise DataError("The probabilities must lie in [0, 1]; pass predicted probabilities.")
    if t.ndim == 2:
        _same_shape(t, P, "probabilities")
    elif P.ndim > 2 or (P.ndim == 2 and P.shape[1] < 2):
        raise DataError(f"Probabilities of shape {P.shape}: pass one column per class.")
    return t, P


# --------------------------------------------------------------------------------------------
# Ranks and the binary curves


def stable_order(score: NDArray[Any]) -> Ints:
    """The stable ascending order of a score: what ROC AUC and average precision both sort by,
    so a report computes it once per binary problem for the two."""
    order: Ints = np.argsort(score, kind="mergesort")
    return order


def rankdata(x: NDArray[Any], order: Ints | None = None) -> Floats:
    """Ranks 1..n of a 1-d array, ties given their average rank (scipy's method="average");
    `order`, its `stable_order` when the caller has it."""
    order = stable_order(x) if order is None else order
    xs = x[order]
    new_value = np.r_[True, xs[1:] != xs[:-1]]
    # starts[g] is the 0-based position where tie group g begins; the last entry closes it.
    starts = np.r_[np.flatnonzero(new_value), len(x)]
    group = np.empty(len(x), dtype=np.intp)
    group[order] = np.cumsum(new_value) - 1
    ranks: Floats = 0.5 * (starts[group] + starts[group + 1] + 1)
    return ranks


def _binary_roc_auc(y: Bools, score: NDArray[Any], order: Ints | None = None) -> float:
    n_pos = np.count_nonzero(y)
    n_neg = len(y) - n_pos
    # Mann-Whitney: the sum of the positives' ranks minus its minimum n_pos (n_pos + 1) / 2 counts
    # (positive, negative) pairs ordered correctly, a tie counting one half; ranks are halves, so
    # the sum is exact in float64.
    rank_sum = float(rankdata(score, order)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _binary_average_precision(y: Bools, score: NDArray[Any], order: Ints | None = None) -> float:
    order = (stable_order(score) if order is None else order)[::-1]
    s = score[order]
    # Last position of each group of equal scores: one threshold per distinct score.
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tps = np.cumsum(y[order], dtype=np.float64)[ends]
    precision = tps / (ends + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


Problem = tuple[str, Bools, NDArray[Any]]
#: f(y, score, the score's stable_order or None) -> the metric of one binary problem.
RankingFunction = Callable[[Bools, NDArray[Any], Ints | None], float]


def binary_problems(t: NDArray[Any], P: NDArray[Any], names: Sequence[str]) -> list[Problem]:
    """The binary (name, y, score) problems behind a macro average: the positive class of a
    binary task, each class one-vs-rest, or each target of a multilabel task."""
    if t.ndim == 2:
        Y = indicator(t, "y_true")
        return [(f"target '{names[j]}'", Y[:, j], P[:, j]) for j in range(Y.shape[1])]
    if P.ndim == 1:
        y = class_indices(t, 2)
        return [(f"class '{names[1]}'", y == 1, P)]
    y = class_indices(t, P.shape[1])
    if P.shape[1] == 2:
        return [(f"class '{names[1]}'", y == 1, P[:, 1])]
    return [(f"class '{names[c]}'", y == c, P[:, c]) for c in range(P.shape[1])]


def _macro_binary(
    problems: list[Problem],
    fn: RankingFunction,
    metric: str,
    needs_negatives: bool,
    orders: Sequence[Ints | None] | None = None,
) -> float:
    """Mean of `fn` over binary problems; undefined (as in scikit-learn) if any one is.
    `orders`, each problem's `stable_order` of its score when the caller has them."""
    check_problems([(name, int(np.count_nonzero(y)), len(y)) for name, y, _ in problems], metric,
                   needs_negatives)  # fmt: skip
    orders = [None] * len(problems) if orders is None else orders
    return float(np.mean([fn(y, s, o) for (_, y, s), o in zip(problems, orders, strict=True)]))


def check_problems(
    counts: Sequence[tuple[str, int, int]], metric: str, needs_negatives: bool
) -> None:
    """UndefinedMetricError unless every binary problem (name, positives, rows) has a positive
    (and, when `needs_negatives`, a negative) row."""
    missing = []
    for name, n_pos, n in counts:
        if n_pos == 0:
            missing.append(f"no positive samples for {name}")
        elif needs_negatives and n_pos == n:
            missing.append(f"no negative samples for {name}")
    if missing:
        raise UndefinedMetricError(metric, f"y_true has {'; '.join(missing)}.")


def _default_names(P: NDArray[Any]) -> list[str]:
    return [str(i) for i in range(2 if P.ndim == 1 else P.shape[1])]


# --------------------------------------------------------------------------------------------
# Metrics on predicted labels


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of rows predicted exactly right; subset accuracy for a multilabel target."""
    t, p = _pair(y_true, y_pred, "predicted labels")
    _same_shape(t, p, "predicted labels")
    hits = t == p
    if hits.ndim == 2:
        hits = hits.all(axis=1)
    return np.count_nonzero(hits) / len(hits)


def hamming_loss(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of wrong labels: 1 - accuracy for one column, over all cells for multilabel."""
    t, p = _pair(y_true, y_pred, "predicted labels")
    _same_shape(t, p, "predicted labels")
    return np.count_nonzero(t != p) / t.size


def _encode(y: NDArray[Any], classes: NDArray[Any], what: str) -> Ints:
    """Positions of the values of `y` in `classes` (which may be in any order)."""
    order = np.argsort(classes, kind="mergesort")
    ordered = classes[order]
    pos = np.searchsorted(ordered, y).clip(0, len(classes) - 1)
    unknown = ordered[pos] != y
    if unknown.any():
        raise DataError(
            f"{what} holds label {y[unknown][0]!r}, which is not among the classes "
            f"{classes.tolist()}; pass every class in `labels`."
        )
    return cast(Ints, order[pos])


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, *, labels: Sequence[Any] | None = None
) -> NDArray[np.int64]:
    """Counts with rows = true class, columns = predicted class, in the order of `labels`
    (default: the sorted union of the labels in y_true and y_pred, as scikit-learn)."""
    t, p = _pair(y_true, y_pred, "predicted labels")
    _same_shape(t, p, "predicted labels")
    only_1d(t, "confusion_matrix")
    classes = np.union1d(t, p) if labels is None else np.asarray(labels)
    k = len(classes)
    cells = _encode(t, classes, "y_true") * k + _encode(p, classes, "The predictions")
    return np.bincount(cells, minlength=k * k).reshape(k, k).astype(np.int64)


def _counts(
    y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[Any] | None
) -> tuple[Floats, Floats, Floats]:
    """Per class (or per target): true positives, predicted counts, true counts."""
    t, p = _pair(y_true, y_pred, "predicted labels")
    _same_shape(t, p, "predicted labels")
    if t.ndim == 2:
        T, Pr = indicator(t, "y_true"), indicator(p, "The predicted labels")
        tp = np.count_nonzero(T & Pr, axis=0)
        return (tp.astype(float), Pr.sum(axis=0, dtype=float), T.sum(axis=0, dtype=float))
    return confusion_counts(confusion_matrix(t, p, labels=labels))


def confusion_counts(C: NDArray[np.int64]) -> tuple[Floats, Floats, Floats]:
    """Per class: true positives, predicted counts, true counts, from a confusion matrix."""
    F = C.astype(float)
    return np.diag(F).copy(), F.sum(axis=0), F.sum(axis=1)


def _divide(num: Floats, den: Floats) -> Floats:
    """num / den with 0 where den == 0 (scikit-learn's zero_division=0)."""
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def precision_recall_f1(
    y_true: ArrayLike, y_pred: ArrayLike, *, labels: Sequence[Any] | None = None
) -> tuple[Floats, Floats, Floats, Floats]:
    """Per class (or per target): precision, recall, F1 and support (true count)."""
    return prf_of_counts(*_counts(y_true, y_pred, labels))


def prf_of_counts(
    tp: Floats, pred_sum: Floats, true_sum: Floats
) -> tuple[Floats, Floats, Floats, Floats]:
    """Per class: precision, recall, F1 and support, from `confusion_counts`."""
    return (
        _divide(tp, pred_sum),
        _divide(tp, true_sum),
        _divide(2 * tp, true_sum + pred_sum),
        true_sum,
    )


def _weighted(values: Floats, support: Floats) -> float:
    return float(np.average(values, weights=support)) if support.sum() > 0 else 0.0


AVERAGES: dict[str, Callable[[Floats, Floats], float]] = {
    "macro": lambda values, support: float(values.mean()),
    "weighted": _weighted,
}
_PRF = {"precision": 0, "recall": 1, "f1": 2}


def _prf_score(
    stat: str,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: str = "macro",
    labels: Sequence[Any] | None = None,
) -> float:
    combine = cast(
        Callable[[Floats, Floats], float],
        choose("average", average, cast(dict[str, object], AVERAGES)),
    )
    per_class = precision_recall_f1(y_true, y_pred, labels=labels)
    return combine(per_class[_PRF[stat]], per_class[3])


def precision(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: str = "macro",
    labels: Sequence[Any] | None = None,
) -> float:
    """Precision averaged over classes ("macro") or weighted by support ("weighted")."""
    return _prf_score("precision", y_true, y_pred, average=average, labels=labels)


def recall(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: str = "macro",
    labels: Sequence[Any] | None = None,
) -> float:
    """Recall averaged over classes ("macro") or weighted by support ("weighted")."""
    return _prf_score("recall", y_true, y_pred, average=average, labels=labels)


def f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: str = "macro",
    labels: Sequence[Any] | None = None,
) -> float:
    """F1 averaged over classes ("macro") or weighted by support ("weighted")."""
    return _prf_score("f1", y_true, y_pred, average=average, labels=labels)


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean recall over the classes that occur in y_true (scikit-learn skips the others)."""
    t = np.asarray(y_true)
    only_1d(t, "balanced_accuracy")
    return balanced_accuracy_of(confusion_matrix(t, y_pred))


def balanced_accuracy_of(C: NDArray[np.int64]) -> float:
    """`balanced_accuracy` from a confusion matrix (classes absent from y_true left out)."""
    true_sum = C.sum(axis=1)
    present = true_sum > 0
    return float(np.mean(np.diag(C)[present] / true_sum[present]))


def mcc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Matthews correlation coefficient, multiclass as scikit-learn; 0 when undefined."""
    t = np.asarray(y_true)
    only_1d(t, "mcc")
    return mcc_of(confusion_matrix(t, y_pred))


def mcc_of(counts: NDArray[np.int64]) -> float:
    """`mcc` from a confusion matrix."""
    C = counts.astype(np.float64)
    t_sum, p_sum = C.sum(axis=1), C.sum(axis=0)
    n = C.sum()
    cov_tp = np.trace(C) * n - t_sum @ p_sum
    cov_pp = n * n - p_sum @ p_sum
    cov_tt = n * n - t_sum @ t_sum
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / math.sqrt(cov_tt * cov_pp))


# --------------------------------------------------------------------------------------------
# Metrics on probabilities


#: Ranking metrics of binary problems: (function, name in messages, needs negatives too).
RANKING: dict[str, tuple[RankingFunction, str, bool]] = {
    "roc_auc": (_binary_roc_auc, "ROC AUC", True),
    "average_precision": (_binary_average_precision, "Average precision", False),
}


def ranking(
    key: str, problems: list[Problem], orders: Sequence[Ints | None] | None = None
) -> float:
    fn, title, needs_negatives = RANKING[key]
    return _macro_binary(problems, fn, title, needs_negatives, orders)


def roc_auc(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Area under the ROC curve: binary on P(class 1), multiclass macro one-vs-rest,
    multilabel macro over targets."""
    t, P = proba_pair(y_true, proba)
    return ranking("roc_auc", binary_problems(t, P, _default_names(P)))


def average_precision(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Area under the precision-recall step curve; macro one-vs-rest / over targets."""
    t, P = proba_pair(y_true, proba)
    return ranking("average_precision", binary_problems(t, P, _default_names(P)))


def _as_columns(t: NDArray[Any], P: NDArray[Any], metric: str) -> tuple[Ints, NDArray[Any]]:
    """Class indices and an (n, k) probability matrix; (n,) is P(class 1) of a binary task."""
    only_1d(t, metric)
    if P.ndim == 1:
        P = np.stack([1 - P, P], axis=1)
    return class_indices(t, P.shape[1]), P


def log_loss(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Mean negative log-probability of the true class, clipped as scikit-learn."""
    y, P = _as_columns(*proba_pair(y_true, proba), "log_loss")
    eps = np.finfo(P.dtype).eps
    p_true = np.clip(P[np.arange(len(y)), y], eps, 1 - eps).astype(np.float64)
    return float(-np.mean(np.log(p_true)))


def brier(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Brier score; see BRIER_DEFINITIONS for the binary and multiclass forms."""
    y, P = _as_columns(*proba_pair(y_true, proba), "brier")
    if P.shape[1] == 2:
        return float(np.mean((P[:, 1].astype(np.float64) - (y == 1)) ** 2))
    D = P.astype(np.float64)  # always a copy, safe to modify
    D[np.arange(len(y)), y] -= 1.0
    return float(np.mean(np.sum(D * D, axis=1)))


# --------------------------------------------------------------------------------------------
# Regression metrics: per-output arrays, and their uniform averages


def values_pair(y_true: Any, y_pred: Any) -> tuple[Floats, Floats]:
    t, p = _pair(y_true, y_pred, "predictions")
    _same_shape(t, p, "predictions")
    if t.ndim == 1:
        t, p = t[:, None], p[:, None]
    return t.astype(np.float64, copy=False), p.astype(np.float64, copy=False)


def _force_finite(num: Floats, den: Floats) -> Floats:
    """1 - num / den, with scikit-learn's force_finite for constant targets (den == 0)."""
    out = np.ones_like(num)
    valid = (den != 0) & (num != 0)
    out[valid] = 1 - num[valid] / den[valid]
    out[(num != 0) & (den == 0)] = 0.0
    return out


def _mse(Y: Floats, P: Floats) -> Floats:
    mse: Floats = np.mean((Y - P) ** 2, axis=0)
    return mse


def _rmse(Y: Floats, P: Floats) -> Floats:
    return np.sqrt(_mse(Y, P))


def _mae(Y: Floats, P: Floats) -> Floats:
    mae: Floats = np.mean(np.abs(Y - P), axis=0)
    return mae


def _median_ae(Y: Floats, P: Floats) -> Floats:
    return np.median(np.abs(Y - P), axis=0)


def _r2(Y: Floats, P: Floats) -> Floats:
    if len(Y) < 2:  # scikit-learn: not well defined with fewer than two samples
        return np.full(Y.shape[1], np.nan)
    num = np.sum((Y - P) ** 2, axis=0)
    den = np.sum((Y - Y.mean(axis=0)) ** 2, axis=0)
    return _force_finite(num, den)


def _explained_variance(Y: Floats, P: Floats) -> Floats:
    return _force_finite(np.var(Y - P, axis=0), np.var(Y, axis=0))


def _pearson(Y: Floats, P: Floats) -> Floats:
    # Exact constancy, as scipy checks it: centring a constant column can leave rounding noise.
    constant = np.equal(Y, Y[0]).all(axis=0) | np.equal(P, P[0]).all(axis=0)
    Yc, Pc = Y - Y.mean(axis=0), P - P.mean(axis=0)
    den = np.sqrt(np.sum(Yc * Yc, axis=0) * np.sum(Pc * Pc, axis=0))
    out = np.full(Y.shape[1], np.nan)
    ok = ~constant & (den > 0)
    out[ok] = np.sum(Yc * Pc, axis=0)[ok] / den[ok]
    clipped: Floats = np.clip(out, -1.0, 1.0)
    return clipped


def _rank_columns(A: Floats) -> Floats:
    return np.column_stack([rankdata(A[:, j]) for j in range(A.shape[1])])


def _spearman(Y: Floats, P: Floats) -> Floats:
    return _pearson(_rank_columns(Y), _rank_columns(P))


#: Per-output regression metrics, in report order: (Y, P) of shape (n, t) -> (t,).
PER_OUTPUT: dict[str, Callable[[Floats, Floats], Floats]] = {
    "mse": _mse,
    "rmse": _rmse,
    "mae": _mae,
    "median_ae": _median_ae,
    "r2": _r2,
    "explained_variance": _explained_variance,
    "pearson": _pearson,
    "spearman": _spearman,
}


def _uniform_average(name: str) -> Callable[[ArrayLike, ArrayLike], float]:
    per_output = PER_OUTPUT[name]

    def metric(y_true: ArrayLike, y_pred: ArrayLike) -> float:
        return float(np.mean(per_output(*values_pair(y_true, y_pred))))

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = f"{name} of each output column, averaged uniformly over the columns."
    return metric


mse = _uniform_average("mse")
rmse = _uniform_average("rmse")
mae = _uniform_average("mae")
median_ae = _uniform_average("median_ae")
r2 = _uniform_average("r2")
explained_variance = _uniform_average("explained_variance")
pearson = _uniform_average("pearson")
spearman = _uniform_average("spearman")


# --------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Metric:
    """A metric: `function(y_true, y_pred) -> float`, which way is better, what `y_pred` holds
    ("labels", "proba" or "values") and the tasks it applies to."""

    name: str
    function: Callable[[ArrayLike, ArrayLike], float]
    greater_is_better: bool
    needs: Needs
    tasks: frozenset[str]

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike) -> float:
        return self.function(y_true, y_pred)

    def is_better(self, score: float, best: float | None) -> bool:
        """Whether `score` improves on `best` (None: nothing yet), e.g. for early stopping."""
        if best is None:
            return True
        return score > best if self.greater_is_better else score < best


_CLASSIFICATION = frozenset({"binary", "multiclass"})
_ALL_CLASSIFICATION = frozenset({"binary", "multiclass", "multilabel"})
_REGRESSION = frozenset({"regression"})

METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", accuracy, True, "labels", _ALL_CLASSIFICATION),
        Metric("balanced_accuracy", balanced_accuracy, True, "labels", _CLASSIFICATION),
        Metric("hamming_loss", hamming_loss, False, "labels", _ALL_CLASSIFICATION),
        *(
            Metric(
                f"{stat}_{average}",
                partial(_prf_score, stat, average=average),
                True,
                "labels",
                _ALL_CLASSIFICATION,
            )
            for stat in _PRF
            for average in AVERAGES
        ),
        Metric("mcc", mcc, True, "labels", _CLASSIFICATION),
        Metric("roc_auc", roc_auc, True, "proba", _ALL_CLASSIFICATION),
        Metric("average_precision", average_precision, True, "proba", _ALL_CLASSIFICATION),
        Metric("log_loss", log_loss, False, "proba", _CLASSIFICATION),
        Metric("brier", brier, False, "proba", _CLASSIFICATION),
        Metric("mse", mse, False, "values", _REGRESSION),
        Metric("rmse", rmse, False, "values", _REGRESSION),
        Metric("mae", mae, False, "values", _REGRESSION),
        Metric("median_ae", median_ae, False, "values", _REGRESSION),
        Metric("r2", r2, True, "values", _REGRESSION),
        Metric("explained_variance", explained_variance, True, "values", _REGRESSION),
        Metric("pearson", pearson, True, "values", _REGRESSION),
        Metric("spearman", spearman, True, "values", _REGRESSION),
    ]
}


def get(name: str) -> Metric:
    """The metric called `name`, or a UsageError that lists the choices."""
    return cast(Metric, choose("metric", name, cast(dict[str, object], METRICS)))


def for_task(task: str) -> list[str]:
    """Names of the metrics that apply to a task ("binary", "multiclass", ...)."""
    return [name for name, m in METRICS.items() if task in m.tasks]


#: A target whose spread is below this share of its mean makes R² meaningless: tables are read
#: as float32 (spacing 1.2e-7 of the value), so rounding alone is of the order of the spread.
R2_RELATIVE_SPREAD = 1e-6


def tiny_spread(Y: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Per column: True when sd < `R2_RELATIVE_SPREAD` x |mean| (and the column varies)."""
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    sd, mean = Y.std(axis=0), np.abs(Y.mean(axis=0))
    narrow: NDArray[np.bool_] = (sd > 0) & (sd < R2_RELATIVE_SPREAD * mean)
    return narrow
