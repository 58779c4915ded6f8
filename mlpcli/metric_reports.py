"""Metric reports: every metric that applies to a task on the same rows, as one JSON-able dict
of plain floats (None plus a note where a metric is undefined), for evaluate, train's summary,
cv and the HTML report. The metric definitions and the input checks are `metrics`'."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mlpcli.errors import DataError, UsageError
from mlpcli.metrics import (
    AVERAGES,
    BRIER_DEFINITIONS,
    PER_OUTPUT,
    R2_RELATIVE_SPREAD,
    RANKING,
    Floats,
    Problem,
    UndefinedMetricError,
    accuracy,
    balanced_accuracy,
    balanced_accuracy_of,
    binary_problems,
    brier,
    class_indices,
    confusion_counts,
    confusion_matrix,
    finite,
    hamming_loss,
    indicator,
    log_loss,
    mcc,
    mcc_of,
    only_1d,
    precision_recall_f1,
    prf_of_counts,
    proba_pair,
    ranking,
    stable_order,
    tiny_spread,
    values_pair,
)


def _num(x: Any) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _rankings(notes: list[str], problems: list[Problem]) -> dict[str, float | None]:
    """roc_auc and average_precision, each None with a note when undefined on these rows."""
    out: dict[str, float | None] = {}
    orders = [stable_order(score) for _, _, score in problems]  # one sort serves both metrics
    for key in RANKING:
        try:
            out[key] = _num(ranking(key, problems, orders))
        except UndefinedMetricError as e:
            notes.append(f"{key} is null: {e.reason}")
            out[key] = None
    return out


def _names(names: Sequence[Any], count: int, what: str) -> list[str]:
    out = [str(s) for s in names]
    if len(out) != count:
        raise DataError(f"{len(out)} {what} given for {count} probability/prediction columns.")
    if len(set(out)) != len(out):
        raise DataError(f"The {what} must be distinct, got {out}.")
    return out


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold must lie in [0, 1], not {threshold}.")


def _class_list(names: list[str], mask: NDArray[np.bool_]) -> str:
    return ", ".join(f"'{names[i]}'" for i in np.flatnonzero(mask))


def classification_report(
    y_true: ArrayLike,
    proba: ArrayLike,
    labels: Sequence[Any],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Every classification metric for class indices y_true (n,) and probabilities (n, k).

    The prediction is proba[:, 1] >= threshold when k == 2, else the most probable class.
    Per-class values use all k labels (scikit-learn's `labels=`), so a class that never occurs
    in y_true still has a row, with recall 0, and counts in the macro average.
    """
    t, P = proba_pair(y_true, proba)
    only_1d(t, "classification_report")
    if P.ndim != 2:
        raise DataError(f"Probabilities of shape {P.shape}: pass one column per class.")
    k = P.shape[1]
    names = _names(labels, k, "labels")
    y = class_indices(t, k)
    binary = k == 2
    if binary:
        _check_threshold(threshold)
        y_pred = (P[:, 1] >= threshold).astype(np.intp)
    else:
        y_pred = P.argmax(axis=1)
    C = confusion_matrix(y, y_pred, labels=list(range(k)))
    ranking_notes: list[str] = []
    rankings = _rankings(ranking_notes, binary_problems(t, P, names))
    return confusion_report(
        C, names, threshold, rankings, ranking_notes, log_loss(y, P), brier(y, P)
    )


def confusion_report(
    C: NDArray[np.int64],
    names: list[str],
    threshold: float,
    rankings: dict[str, float | None],
    ranking_notes: list[str],
    log_loss_value: float,
    brier_value: float,
) -> dict[str, Any]:
    """`classification_report` from what it is made of: the confusion matrix (rows = true
    class), the ranking metrics with their notes, the log loss and the Brier score. The
    streamed report (`metric_streams`) gives the same document from row blocks."""
    k = len(names)
    binary = k == 2
    task = "binary" if binary else "multiclass"
    n = int(C.sum())
    notes: list[str] = []
    prec, rec, f, support = prf_of_counts(*confusion_counts(C))
    absent = support == 0
    if absent.any():
        notes.append(
            f"Class(es) {_class_list(names, absent)} never occur in y_true: their recall and F1 "
            "are 0 and count in the macro average; balanced_accuracy leaves them out."
        )
    never_predicted = (C.sum(axis=0) == 0) & ~absent
    if never_predicted.any():
        notes.append(
            f"Class(es) {_class_list(names, never_predicted)} are never predicted: "
            "their precision is 0."
        )
    notes += ranking_notes

    def averages(combine: Callable[[Floats, Floats], float]) -> dict[str, Any]:
        return {
            "precision": _num(combine(prec, support)),
            "recall": _num(combine(rec, support)),
            "f1": _num(combine(f, support)),
            "support": n,
        }

    return {
        "task": task,
        "n_samples": n,
        "threshold": float(threshold) if binary else None,
        "accuracy": _num(int(np.trace(C)) / n),
        "balanced_accuracy": _num(balanced_accuracy_of(C)),
        # The clinician's pair: recall of the positive class (labels[1]) and of the negative.
        **(
            {"positive_class": names[1], "sensitivity": _num(rec[1]), "specificity": _num(rec[0])}
            if binary
            else {}
        ),
        "per_class": {
            name: {
                "precision": _num(prec[i]),
                "recall": _num(rec[i]),
                "f1": _num(f[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "macro_avg": averages(AVERAGES["macro"]),
        "weighted_avg": averages(AVERAGES["weighted"]),
        "mcc": _num(mcc_of(C)),
        **rankings,
        "log_loss": _num(log_loss_value),
        "brier": _num(brier_value),
        "brier_definition": BRIER_DEFINITIONS[task],
        "confusion_matrix": {"labels": names, "matrix": C.tolist()},
        "support": {name: int(support[i]) for i, name in enumerate(names)},
        "notes": notes,
    }


MULTILABEL_FLOATS = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "mcc",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier",
)


def _mean_or_none(values: list[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return _num(np.mean(cast(list[float], values)))


def multilabel_report(
    Y_true: ArrayLike,
    proba: ArrayLike,
    target_names: Sequence[Any],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Binary metrics of each target (positive class = 1, predicted when p >= threshold),
    their macro averages (None if any target's value is undefined), subset accuracy and
    Hamming loss."""
    t, P = proba_pair(Y_true, proba)
    if t.ndim != 2:
        raise DataError(f"A multilabel y_true needs shape (n, targets), not {t.shape}.")
    names = _names(target_names, t.shape[1], "target names")
    _check_threshold(threshold)
    Y = indicator(t, "y_true").astype(np.intp)
    Pred = np.greater_equal(P, threshold).astype(np.intp)
    notes: list[str] = []
    per_target: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        y, pred, p = Y[:, j], Pred[:, j], P[:, j]
        prec, rec, f, _ = precision_recall_f1(y, pred, labels=[0, 1])
        (tn, fp), (fn, tp) = confusion_matrix(y, pred, labels=[0, 1]).tolist()
        per_target[name] = {
            "accuracy": _num(accuracy(y, pred)),
            "balanced_accuracy": _num(balanced_accuracy(y, pred)),
            "precision": _num(prec[1]),
            "recall": _num(rec[1]),
            "f1": _num(f[1]),
            "support": tp + fn,
            "mcc": _num(mcc(y, pred)),
            **_rankings(notes, [(f"target '{name}'", y == 1, p)]),
            "log_loss": _num(log_loss(y, p)),
            "brier": _num(brier(y, p)),
            "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        }
    macro: dict[str, Any] = {
        key: _mean_or_none([row[key] for row in per_target.values()]) for key in MULTILABEL_FLOATS
    }
    macro["support"] = int(Y.sum())
    for key in ("roc_auc", "average_precision"):
        if macro[key] is None:
            notes.append(f"macro {key} is null because it is undefined for some target.")
    return {
        "task": "multilabel",
        "n_samples": len(Y),
        "threshold": float(threshold),
        "subset_accuracy": _num(accuracy(Y, Pred)),
        "hamming_loss": _num(hamming_loss(Y, Pred)),
        "per_target": per_target,
        "macro_avg": macro,
        "notes": notes,
    }


def _scale_notes(Y: NDArray[np.float64], names: list[str]) -> list[str]:
    tiny = tiny_spread(Y)
    if not tiny.any() or len(Y) < 2:
        return []
    return [
        f"R² is meaningless for target(s) {_class_list(names, tiny)}: their standard deviation "
        f"is below {R2_RELATIVE_SPREAD:g} of their mean, so rounding dominates; subtract a "
        "reference value from the target (or rescale it) and retrain."
    ]


def regression_report(
    Y_true: ArrayLike, Y_pred: ArrayLike, target_names: Sequence[Any]
) -> dict[str, Any]:
    """Every regression metric per target and uniformly averaged over targets (None when a
    target's value is undefined, e.g. pearson of a constant column)."""
    Y, P = values_pair(Y_true, Y_pred)
    finite(Y, "true values")
    finite(P, "predictions")
    names = _names(target_names, Y.shape[1], "target names")
    notes: list[str] = []
    values = {key: fn(Y, P) for key, fn in PER_OUTPUT.items()}
    for key, per in values.items():
        undefined = ~np.isfinite(per)
        if undefined.any():
            notes.append(
                f"{key} is null for target(s) {_class_list(names, undefined)} "
                + (
                    "(fewer than two rows)."
                    if len(Y) < 2
                    else "(constant true or predicted values)."
                )
            )
    notes += _scale_notes(Y, names)
    return {
        "task": "regression",
        "n_samples": len(Y),
        "per_target": {
            name: {key: _num(per[j]) for key, per in values.items()} for j, name in enumerate(names)
        },
        "average": {
            key: (_num(per.mean()) if np.isfinite(per).all() else None)
            for key, per in values.items()
        },
        "notes": notes,
    }
