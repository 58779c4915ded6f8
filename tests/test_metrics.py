"""Metrics against values computed by hand (the arithmetic is in the comments), the registry's
contract for every metric, and the reports' JSON shape."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from mlpcli import metrics
from mlpcli import task as tasks
from mlpcli.errors import DataError, UsageError
from mlpcli.metrics import METRICS

approx = pytest.approx

# --------------------------------------------------------------------------------------------
# Shared hand-computed cases

# Binary: y_true = [0, 0, 1, 1, 1], P(class 1) = [0.2, 0.6, 0.55, 0.9, 0.4]; at threshold 0.5 the
# predictions are [0, 1, 1, 1, 0]: TN = 1 (row 0), FP = 1 (row 1), TP = 2 (rows 2, 3), FN = 1.
Y_BIN = np.array([0, 0, 1, 1, 1])
P1_BIN = np.array([0.2, 0.6, 0.55, 0.9, 0.4])
PRED_BIN = np.array([0, 1, 1, 1, 0])

# Multiclass: y_true = [0, 1, 2, 2]; argmax per row (first on ties) = [0, 1, 1, 0].
Y_MC = np.array([0, 1, 2, 2])
P_MC = np.array(
    [
        [0.5, 0.3, 0.2],
        [0.2, 0.4, 0.4],
        [0.1, 0.5, 0.4],
        [0.4, 0.2, 0.4],
    ]
)


def _proba(p1: NDArray[Any]) -> NDArray[np.float64]:
    return np.column_stack([1 - p1, p1])


# --------------------------------------------------------------------------------------------
# Label metrics


def test_binary_label_metrics_by_hand() -> None:
    # accuracy = (TN + TP) / n = 3 / 5
    assert metrics.accuracy(Y_BIN, PRED_BIN) == approx(0.6)
    # class 0: precision 1/2 (rows 0, 4 predicted 0), recall 1/2, F1 1/2
    # class 1: precision 2/3, recall 2/3, F1 2/3
    p, r, f, s = metrics.precision_recall_f1(Y_BIN, PRED_BIN)
    assert p.tolist() == approx([1 / 2, 2 / 3])
    assert r.tolist() == approx([1 / 2, 2 / 3])
    assert f.tolist() == approx([1 / 2, 2 / 3])
    assert s.tolist() == [2, 3]
    # macro F1 = (1/2 + 2/3) / 2 = 7/12; weighted F1 = (2 * 1/2 + 3 * 2/3) / 5 = 3/5
    assert metrics.f1(Y_BIN, PRED_BIN, average="macro") == approx(7 / 12)
    assert metrics.f1(Y_BIN, PRED_BIN, average="weighted") == approx(3 / 5)
    # balanced accuracy = mean recall = (1/2 + 2/3) / 2 = 7/12
    assert metrics.balanced_accuracy(Y_BIN, PRED_BIN) == approx(7 / 12)
    # MCC = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3*3*2*2) = 1/6
    assert metrics.mcc(Y_BIN, PRED_BIN) == approx(1 / 6)


def test_class_never_predicted_has_precision_zero() -> None:
    y_true, y_pred = np.array([0, 1, 2, 2]), np.array([0, 0, 2, 2])
    # class 0: tp 1, predicted 2, true 1 -> P 1/2, R 1, F1 = 2*1 / (1 + 2) = 2/3
    # class 1: never predicted -> P 0 (zero_division=0), R 0, F1 0
    # class 2: P 1, R 1, F1 1
    p, r, f, _ = metrics.precision_recall_f1(y_true, y_pred)
    assert p.tolist() == approx([1 / 2, 0, 1])
    assert r.tolist() == approx([1, 0, 1])
    assert f.tolist() == approx([2 / 3, 0, 1])
    # macro: P (1/2 + 0 + 1) / 3 = 1/2, R 2/3, F1 (2/3 + 1) / 3 = 5/9
    assert metrics.precision(y_true, y_pred) == approx(1 / 2)
    assert metrics.recall(y_true, y_pred) == approx(2 / 3)
    assert metrics.f1(y_true, y_pred) == approx(5 / 9)
    # weighted by support (1, 1, 2): P (1/2 + 0 + 2) / 4, R (1 + 0 + 2) / 4, F1 (2/3 + 2) / 4
    assert metrics.precision(y_true, y_pred, average="weighted") == approx(0.625)
    assert metrics.recall(y_true, y_pred, average="weighted") == approx(0.75)
    assert metrics.f1(y_true, y_pred, average="weighted") == approx(2 / 3)
    # A class 3 that occurs nowhere counts in the macro average once it is listed in labels:
    # F1 (2/3 + 0 + 1 + 0) / 4 = 5/12, as scikit-learn with labels=[0, 1, 2, 3]
    assert metrics.f1(y_true, y_pred, labels=[0, 1, 2, 3]) == approx(5 / 12)
    # C = [[1,0,0],[1,0,0],[0,0,2]], t = (1,1,2), p = (2,0,2), trace 3, n 4:
    # (3*4 - (2+0+4)) / sqrt((16 - (1+1+4)) (16 - (4+0+4))) = 6 / sqrt(80)
    assert metrics.mcc(y_true, y_pred) == approx(6 / math.sqrt(80))


def test_balanced_accuracy_skips_classes_absent_from_y_true() -> None:
    # classes in y_true: 0 (recall 1), 1 (recall 1/2); class 2 is only predicted -> (1 + 1/2) / 2
    assert metrics.balanced_accuracy([0, 1, 1], [0, 1, 2]) == approx(0.75)


@pytest.mark.parametrize(
    ("y_pred", "expected_accuracy", "expected_mcc"),
    [([0, 1, 0, 1], 1.0, 1.0), ([1, 0, 1, 0], 0.0, -1.0), ([0, 0, 0, 0], 0.5, 0.0)],
    ids=["perfect", "worst", "constant"],
)
def test_perfect_worst_and_constant_predictions(
    y_pred: list[int], expected_accuracy: float, expected_mcc: float
) -> None:
    y_true = [0, 1, 0, 1]
    assert metrics.accuracy(y_true, y_pred) == expected_accuracy
    # a constant prediction makes MCC's denominator 0; scikit-learn returns 0
    assert metrics.mcc(y_true, y_pred) == approx(expected_mcc)


def test_confusion_matrix_rows_true_columns_predicted() -> None:
    cm = metrics.confusion_matrix([0, 1, 2, 2], [0, 0, 2, 1], labels=[0, 1, 2])
    assert cm.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]


def test_multilabel_label_metrics() -> None:
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    Pred = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    # rows right in every column: 0, 1, 3 -> 3/4; wrong cells: 1 of 8
    assert metrics.accuracy(Y, Pred) == approx(0.75)
    assert metrics.hamming_loss(Y, Pred) == approx(1 / 8)
    # target 0: F1 1; target 1: tp 1, fp 0, fn 1 -> 2 / (2 + 1) = 2/3; macro (1 + 2/3) / 2
    assert metrics.f1(Y, Pred) == approx(5 / 6)


# --------------------------------------------------------------------------------------------
# Ranks, ROC AUC, average precision


def test_rankdata_averages_ties() -> None:
    # sorted: 0.2 (rank 1), 0.5 and 0.5 (ranks 2, 3 -> 2.5 each), 0.9 (rank 4)
    assert metrics.rankdata(np.array([0.5, 0.5, 0.2, 0.9])).tolist() == [2.5, 2.5, 1.0, 4.0]


@pytest.mark.parametrize(
    ("y_true", "score", "expected"),
    [
        # scikit-learn's docstring example: of 4 (pos, neg) pairs only (0.35, 0.4) is misordered
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 3 / 4),
        # positives 0.5, 0.9; negatives 0.5, 0.2: pairs 1/2 (tie) + 1 + 1 + 1 = 3.5 of 4
        ([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9], 3.5 / 4),
        # every score tied: each pair counts 1/2
        ([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3], 1 / 2),
        ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0),
        ([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1], 0.0),
    ],
    ids=["docstring", "one-tie", "all-tied", "perfect", "worst"],
)
def test_binary_roc_auc(y_true: list[int], score: list[float], expected: float) -> None:
    assert metrics.roc_auc(y_true, np.array(score)) == approx(expected)
    assert metrics.roc_auc(y_true, _proba(np.array(score))) == approx(expected)


def test_binary_ranking_metrics_by_hand() -> None:
    # positives 0.55, 0.9, 0.4 against negatives 0.2, 0.6: 1+0 + 1+1 + 1+0 = 4 of 6 pairs
    assert metrics.roc_auc(Y_BIN, P1_BIN) == approx(2 / 3)
    # descending: 0.9+ (P 1, R 1/3), 0.6-, 0.55+ (P 2/3, R 2/3), 0.4+ (P 3/4, R 1), 0.2-
    # AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/4 = 29/36
    assert metrics.average_precision(Y_BIN, P1_BIN) == approx(29 / 36)


@pytest.mark.parametrize(
    ("y_true", "score", "expected"),
    [
        # descending 0.8+ (P 1, R 1/2), 0.4-, 0.35+ (P 2/3, R 1), 0.1-: 1/2 + 1/2 * 2/3
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 5 / 6),
        # one threshold for the tied 0.7s: P 2/3 at R 1 -> 2/3 (breaking the tie positives-first
        # would give 1, negatives-first 1/2 * 1/2 + 1/2 * 2/3)
        ([1, 0, 1, 0], [0.7, 0.7, 0.7, 0.2], 2 / 3),
        # all positives: precision 1 at every threshold
        ([1, 1, 1], [0.1, 0.5, 0.9], 1.0),
    ],
    ids=["docstring", "tied-threshold", "all-positive"],
)
def test_average_precision(y_true: list[int], score: list[float], expected: float) -> None:
    assert metrics.average_precision(y_true, np.array(score)) == approx(expected)


def test_multiclass_ranking_metrics_are_macro_one_vs_rest() -> None:
    # class 0: scores (0.5, 0.2, 0.1, 0.4), positive 0.5 beats all 3 negatives -> AUC 1
    # class 1: scores (0.3, 0.4, 0.5, 0.2), positive 0.4 beats 0.3 and 0.2, loses to 0.5 -> 2/3
    # class 2: scores (0.2, 0.4, 0.4, 0.4), positives 0.4, 0.4 vs 0.2 (win) and 0.4 (tie) -> 3/4
    # macro = (1 + 2/3 + 3/4) / 3 = 29/36
    assert metrics.roc_auc(Y_MC, P_MC) == approx(29 / 36)
    # AP class 0: 1; class 1: 0.5- then 0.4+ (P 1/2, R 1) -> 1/2; class 2: one threshold 0.4
    # with P 2/3 at R 1 -> 2/3; macro = (1 + 1/2 + 2/3) / 3 = 13/18
    assert metrics.average_precision(Y_MC, P_MC) == approx(13 / 18)


def test_multilabel_ranking_metrics_are_macro_over_targets() -> None:
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    # target 0: positives 0.9, 0.6 vs 0.4, 0.2 -> 1; target 1: positives 0.6, 0.3 vs 0.2, 0.35:
    # 1 + 1 + 1 + 0 = 3 of 4 -> macro (1 + 3/4) / 2
    P = np.array([[0.9, 0.2], [0.4, 0.6], [0.6, 0.3], [0.2, 0.35]])
    assert metrics.roc_auc(Y, P) == approx(7 / 8)


@pytest.mark.parametrize("fn", [metrics.roc_auc, metrics.average_precision], ids=["auc", "ap"])
def test_ranking_metrics_undefined_without_positives(fn: Any) -> None:
    with pytest.raises(metrics.UndefinedMetricError, match="no positive samples for class '1'"):
        fn([0, 0, 0], np.array([0.1, 0.5, 0.9]))


def test_roc_auc_undefined_when_a_class_is_missing() -> None:
    with pytest.raises(metrics.UndefinedMetricError, match="class '2'"):
        metrics.roc_auc([0, 1, 0, 1], P_MC)


# --------------------------------------------------------------------------------------------
# Probability metrics


def test_log_loss_and_brier_binary_by_hand() -> None:
    # probability of the true class: 0.8, 0.4, 0.55, 0.9, 0.4
    expected = -(math.log(0.8) + math.log(0.4) + math.log(0.55) + math.log(0.9) + math.log(0.4))
    assert metrics.log_loss(Y_BIN, P1_BIN) == approx(expected / 5)  # 0.5517845...
    assert metrics.log_loss(Y_BIN, _proba(P1_BIN)) == approx(expected / 5)
    # (0.2)^2 + (0.6)^2 + (0.45)^2 + (0.1)^2 + (0.6)^2 = 0.9725, over 5
    assert metrics.brier(Y_BIN, P1_BIN) == approx(0.1945)
    assert metrics.brier(Y_BIN, _proba(P1_BIN)) == approx(0.1945)


def test_log_loss_and_brier_multiclass_by_hand() -> None:
    # true-class probabilities 0.5, 0.4, 0.4, 0.4
    assert metrics.log_loss(Y_MC, P_MC) == approx(-(math.log(0.5) + 3 * math.log(0.4)) / 4)
    # rows: 0.25+0.09+0.04, 0.04+0.36+0.16, 0.01+0.25+0.36, 0.16+0.04+0.36 = 2.12, over 4
    assert metrics.brier(Y_MC, P_MC) == approx(0.53)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.float64, -math.log(2.0**-52)), (np.float32, -math.log(2.0**-23))],
    ids=["float64", "float32"],
)
def test_log_loss_clips_at_the_dtype_epsilon(dtype: Any, expected: float) -> None:
    # certain and wrong: p(true) = 0 is clipped to eps = 2^-52 (float64), 2^-23 (float32)
    wrong = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    assert metrics.log_loss([1, 0], wrong) == approx(expected)
    # certain and right: -log(1 - eps), about eps
    assert metrics.log_loss([0, 1], wrong) == approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------------------------
# Regression metrics

Y_REG = np.array([3.0, -0.5, 2.0, 7.0])
P_REG = np.array([2.5, 0.0, 2.0, 8.0])


def test_regression_metrics_by_hand() -> None:
    # errors 0.5, -0.5, 0, -1
    assert metrics.mse(Y_REG, P_REG) == approx((0.25 + 0.25 + 0 + 1) / 4)
    assert metrics.rmse(Y_REG, P_REG) == approx(math.sqrt(0.375))
    assert metrics.mae(Y_REG, P_REG) == approx(0.5)
    assert metrics.median_ae(Y_REG, P_REG) == approx(0.5)  # median of 0, .5, .5, 1
    # mean y 2.875; SS_tot = 0.125^2 + 3.375^2 + 0.875^2 + 4.125^2 = 29.1875; SS_res = 1.5
    assert metrics.r2(Y_REG, P_REG) == approx(1 - 1.5 / 29.1875)
    # residuals minus their mean -0.25: .75, -.25, .25, -.75 -> Var 1.25/4; Var y 29.1875/4
    assert metrics.explained_variance(Y_REG, P_REG) == approx(1 - 1.25 / 29.1875)
    # centred p: -0.625, -3.125, -1.125, 4.875; cross sum 31.5625; S_pp = 35.1875
    assert metrics.pearson(Y_REG, P_REG) == approx(31.5625 / math.sqrt(29.1875 * 35.1875))
    # same order in y and p: ranks (3, 1, 2, 4) both
    assert metrics.spearman(Y_REG, P_REG) == approx(1.0)


def test_spearman_averages_tied_ranks() -> None:
    # ranks y (1, 2.5, 2.5, 4), p (1, 4, 2.5, 2.5); centred (-1.5, 0, 0, 1.5), (-1.5, 1.5, 0, 0)
    # -> 2.25 / sqrt(4.5 * 4.5) = 1/2
    assert metrics.spearman([1.0, 2.0, 2.0, 3.0], [1.0, 3.0, 2.0, 2.0]) == approx(0.5)


def test_multi_output_is_a_uniform_average_of_per_output_scores() -> None:
    Y = np.array([[0.5, 1.0], [-1.0, 1.0], [7.0, -6.0]])
    P = np.array([[0.0, 2.0], [-1.0, 2.0], [8.0, -5.0]])
    # mse per output (0.25 + 0 + 1) / 3 and (1 + 1 + 1) / 3
    assert metrics.mse(Y, P) == approx((1.25 / 3 + 1.0) / 2)
    # rmse averages the per-output roots, not the root of the average
    assert metrics.rmse(Y, P) == approx((math.sqrt(1.25 / 3) + 1.0) / 2)
    # output 0: mean 13/6, SS_tot = 217/6, SS_res 1.25; output 1: mean -4/3, SS_tot 98/3, 3
    assert metrics.r2(Y, P) == approx((1 - 1.25 / (217 / 6) + 1 - 3 / (98 / 3)) / 2)


@pytest.mark.parametrize(
    ("y_pred", "expected_r2", "expected_ev"),
    [([2.0, 2.0, 2.0], 1.0, 1.0), ([3.0, 3.0, 3.0], 0.0, 1.0), ([2.0, 3.0, 2.0], 0.0, 0.0)],
    ids=["perfect", "offset", "imperfect"],
)
def test_constant_y_true_is_forced_finite(
    y_pred: list[float], expected_r2: float, expected_ev: float
) -> None:
    # SS_tot = 0: scikit-learn's force_finite gives 1 for a zero numerator, else 0. For the
    # explained variance the numerator is Var(y - p), which a constant offset leaves at 0.
    y_true = [2.0, 2.0, 2.0]
    assert metrics.r2(y_true, y_pred) == expected_r2
    assert metrics.explained_variance(y_true, y_pred) == expected_ev


def test_pearson_of_a_constant_column_is_nan() -> None:
    assert math.isnan(metrics.pearson([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    assert math.isnan(metrics.spearman([1.0, 1.0, 1.0], [5.0, 6.0, 7.0]))


# --------------------------------------------------------------------------------------------
# Registry


#: The best value of every metric; a new metric needs a line here.
BEST = {
    "accuracy": 1.0,
    "balanced_accuracy": 1.0,
    "hamming_loss": 0.0,
    "precision_macro": 1.0,
    "precision_weighted": 1.0,
    "recall_macro": 1.0,
    "recall_weighted": 1.0,
    "f1_macro": 1.0,
    "f1_weighted": 1.0,
    "mcc": 1.0,
    "roc_auc": 1.0,
    "average_precision": 1.0,
    "log_loss": 0.0,
    "brier": 0.0,
    "mse": 0.0,
    "rmse": 0.0,
    "mae": 0.0,
    "median_ae": 0.0,
    "r2": 1.0,
    "explained_variance": 1.0,
    "pearson": 1.0,
    "spearman": 1.0,
}

_Y_TASK = {
    "binary": np.array([0, 1, 1, 0, 1, 0]),
    "multiclass": np.array([0, 1, 2, 0, 1, 2]),
    "multilabel": np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]]),
    "regression": np.array([[0.5, 1.0], [1.5, -2.0], [3.0, 0.0], [4.0, 2.5], [6.0, 3.0]]),
}


def _predictions(metric: metrics.Metric, task: str, perfect: bool) -> tuple[Any, Any]:
    """(y_true, y_pred) for `task` in the form the metric needs: perfect, or clearly worse."""
    y = _Y_TASK[task]
    if task == "regression":
        return y, (y if perfect else y[::-1] + 1.0)
    # every label flipped, or every class shifted to the next one
    wrong = 1 - y if task == "multilabel" else (y + 1) % (y.max() + 1)
    labels = y if perfect else wrong
    if metric.needs == "labels":
        return y, labels
    if task == "multilabel":
        return y, labels.astype(float)
    return y, np.eye(y.max() + 1)[labels]


def _cases() -> list[Any]:
    return [
        pytest.param(name, task, id=f"{name}-{task}")
        for name, m in METRICS.items()
        for task in tasks.TASKS
        if task in m.tasks
    ]


def test_every_metric_has_a_best_value() -> None:
    assert set(BEST) == set(METRICS)


@pytest.mark.parametrize(("name", "task"), _cases())
def test_perfect_predictions_give_the_best_value(name: str, task: str) -> None:
    metric = METRICS[name]
    score = metric(*_predictions(metric, task, perfect=True))
    assert isinstance(score, float)
    assert score == approx(BEST[name], abs=1e-9)


@pytest.mark.parametrize(("name", "task"), _cases())
def test_greater_is_better_matches_the_direction(name: str, task: str) -> None:
    metric = METRICS[name]
    best = metric(*_predictions(metric, task, perfect=True))
    worse = metric(*_predictions(metric, task, perfect=False))
    assert worse != approx(best)
    assert metric.is_better(best, worse)
    assert not metric.is_better(worse, best)
    assert metric.is_better(worse, None)


@pytest.mark.parametrize(
    "name",
    [n for n, m in METRICS.items() if m.needs != "values" and "multilabel" not in m.tasks],
)
def test_metrics_without_multilabel_support_say_so(name: str) -> None:
    metric = METRICS[name]
    y = _Y_TASK["multilabel"]
    with pytest.raises(DataError, match="multilabel"):
        metric(y, y if metric.needs == "labels" else y.astype(float))


@pytest.mark.parametrize("task", list(tasks.TASKS), ids=str)
def test_default_metrics_apply_to_their_task(task: str) -> None:
    assert task in metrics.get(tasks.TASKS[task].default_metric).tasks
    assert tasks.TASKS[task].default_metric in metrics.for_task(task)


def test_get_unknown_metric_lists_the_choices() -> None:
    assert metrics.get("r2") is METRICS["r2"]
    with pytest.raises(UsageError, match=r"Unknown metric 'auc'; choose one of: accuracy, "):
        metrics.get("auc")


def test_unknown_average_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Unknown average 'micro'"):
        metrics.f1([0, 1], [0, 1], average="micro")


@pytest.mark.parametrize(
    ("fn", "y_true", "y_pred", "message"),
    [
        (metrics.accuracy, [0, 1, 1], [0, 1], "y_true has 3 rows but the predicted labels have 2"),
        (metrics.r2, [], [], "y_true is empty"),
        (metrics.log_loss, [0, 3], P_MC[:2], "class index 3, but the probabilities have only 3"),
        (metrics.roc_auc, [0, 1], np.array([0.5, 1.5]), r"must lie in \[0, 1\]"),
        (metrics.mse, [[1.0, 2.0]], [[1.0]], r"shape \(1, 2\) but the predictions have shape"),
    ],
    ids=["length", "empty", "class-index", "proba-range", "shape"],
)
def test_bad_inputs_raise_data_errors(fn: Any, y_true: Any, y_pred: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        fn(y_true, y_pred)
