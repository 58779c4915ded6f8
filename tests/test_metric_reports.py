"""metric_reports: every applicable metric of a task in one JSON-able dict, checked by hand on
the small cases of test_metrics."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from test_metrics import P1_BIN, P_MC, P_REG, Y_BIN, Y_MC, Y_REG, _proba

from mlpcli import metric_reports, metrics
from mlpcli.errors import DataError, UsageError

approx = pytest.approx


def _dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, allow_nan=False)


def _plain(value: Any) -> None:
    """Only JSON's own types: no NumPy scalars, no NaN."""
    if isinstance(value, dict):
        for v in value.values():
            _plain(v)
    elif isinstance(value, list):
        for v in value:
            _plain(v)
    else:
        assert value is None or type(value) in (str, int, float, bool), type(value)
        assert not (isinstance(value, float) and math.isnan(value))


def test_binary_classification_report_by_hand() -> None:
    report = metric_reports.classification_report(Y_BIN, _proba(P1_BIN), ["neg", "pos"])
    _plain(report)
    assert report["task"] == "binary"
    assert report["threshold"] == 0.5
    assert report["accuracy"] == approx(0.6)
    assert report["balanced_accuracy"] == approx(7 / 12)
    assert report["per_class"]["pos"] == approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert report["macro_avg"]["f1"] == approx(7 / 12)
    assert report["weighted_avg"]["f1"] == approx(3 / 5)
    assert report["mcc"] == approx(1 / 6)
    assert report["roc_auc"] == approx(2 / 3)
    assert report["average_precision"] == approx(29 / 36)
    assert report["brier"] == approx(0.1945)
    assert "(p - y)^2" in report["brier_definition"]
    # rows true (neg, pos), columns predicted: TN 1, FP 1 / FN 1, TP 2
    assert report["confusion_matrix"] == {"labels": ["neg", "pos"], "matrix": [[1, 1], [1, 2]]}
    assert report["support"] == {"neg": 2, "pos": 3}
    assert report["notes"] == []


@pytest.mark.parametrize(
    ("threshold", "matrix", "accuracy"),
    [
        # p >= 0.58: predictions 0, 1, 0, 1, 0 -> TN 1, FP 1, FN 2, TP 1
        (0.58, [[1, 1], [2, 1]], 2 / 5),
        # p >= 0.3: predictions 0, 1, 1, 1, 1 -> TN 1, FP 1, FN 0, TP 3
        (0.3, [[1, 1], [0, 3]], 4 / 5),
        # p >= 0.55 includes the 0.55 exactly: same as 0.5
        (0.55, [[1, 1], [1, 2]], 3 / 5),
    ],
    ids=["0.58", "0.3", "0.55-inclusive"],
)
def test_binary_threshold(threshold: float, matrix: list[list[int]], accuracy: float) -> None:
    report = metric_reports.classification_report(Y_BIN, _proba(P1_BIN), ["neg", "pos"], threshold)
    assert report["confusion_matrix"]["matrix"] == matrix
    assert report["accuracy"] == approx(accuracy)
    # the ranking metrics do not depend on the threshold
    assert report["roc_auc"] == approx(2 / 3)


def test_multiclass_classification_report_by_hand() -> None:
    report = metric_reports.classification_report(Y_MC, P_MC, ["a", "b", "c"])
    _plain(report)
    assert report["task"] == "multiclass"
    assert report["threshold"] is None
    # predictions (argmax, first on ties) 0, 1, 1, 0 against 0, 1, 2, 2
    assert report["confusion_matrix"]["matrix"] == [[1, 0, 0], [0, 1, 0], [1, 1, 0]]
    assert report["accuracy"] == approx(0.5)
    # a: P 1/2, R 1, F1 2/3; b: same; c: never predicted -> P 0, R 0, F1 0
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert report["macro_avg"] == approx(
        {"precision": 1 / 3, "recall": 2 / 3, "f1": 4 / 9, "support": 4}
    )
    # weights 1, 1, 2: P (1/2 + 1/2) / 4, R (1 + 1) / 4, F1 (2/3 + 2/3) / 4
    assert report["weighted_avg"] == approx(
        {"precision": 1 / 4, "recall": 1 / 2, "f1": 1 / 3, "support": 4}
    )
    assert report["balanced_accuracy"] == approx(2 / 3)
    # t = (1, 1, 2), p = (2, 2, 0), trace 2, n 4: (8 - 4) / sqrt((16 - 6) (16 - 8))
    assert report["mcc"] == approx(4 / math.sqrt(80))
    assert report["roc_auc"] == approx(29 / 36)
    assert report["average_precision"] == approx(13 / 18)
    assert report["log_loss"] == approx(-(math.log(0.5) + 3 * math.log(0.4)) / 4)
    assert report["brier"] == approx(0.53)
    assert "sum over classes" in report["brier_definition"]
    assert any("'c' are never predicted" in note for note in report["notes"])


def test_class_missing_from_y_true_gives_null_roc_auc_with_a_note() -> None:
    y_true = np.array([0, 1, 0, 1])  # class 'c' never occurs
    report = metric_reports.classification_report(y_true, P_MC, ["a", "b", "c"])
    assert report["roc_auc"] is None
    assert report["average_precision"] is None
    assert report["per_class"]["c"]["support"] == 0
    assert any(n.startswith("roc_auc is null") and "'c'" in n for n in report["notes"])
    assert any("'c' never occur in y_true" in n for n in report["notes"])
    _plain(report)
    assert '"roc_auc": null' in _dumps(report)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"labels": ["a", "b"]}, DataError, "2 labels given for 3"),
        ({"labels": ["a", "a", "b"]}, DataError, "must be distinct"),
        ({"labels": ["a", "b", "c"], "y_true": [0, 1, 2, 3]}, DataError, "class index 3"),
    ],
    ids=["label-count", "duplicate-labels", "class-index"],
)
def test_classification_report_rejects_bad_input(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    args = {"y_true": Y_MC, "proba": P_MC, **kwargs}
    with pytest.raises(error, match=message):
        metric_reports.classification_report(**args)


def test_threshold_outside_zero_one_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"--threshold must lie in \[0, 1\], not 1.5"):
        metric_reports.classification_report(Y_BIN, _proba(P1_BIN), ["neg", "pos"], threshold=1.5)


def test_multilabel_report_by_hand() -> None:
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    P = np.array([[0.9, 0.2], [0.4, 0.6], [0.6, 0.3], [0.2, 0.1]])
    report = metric_reports.multilabel_report(Y, P, ["x", "y"])
    _plain(report)
    # predictions [[1,0],[0,1],[1,0],[0,0]]: row 2 misses target y -> 3/4 rows, 1/8 cells
    assert report["subset_accuracy"] == approx(0.75)
    assert report["hamming_loss"] == approx(0.125)
    assert report["per_target"]["x"]["f1"] == approx(1.0)
    # target y: TP 1, FN 1, FP 0, TN 2 -> P 1, R 1/2, F1 2/3, accuracy 3/4
    y_row = report["per_target"]["y"]
    assert y_row["confusion_matrix"] == {"tn": 2, "fp": 0, "fn": 1, "tp": 1}
    assert (y_row["precision"], y_row["recall"], y_row["f1"]) == approx((1, 1 / 2, 2 / 3))
    assert y_row["accuracy"] == approx(0.75)
    # positives 0.6, 0.3 above both negatives 0.2, 0.1
    assert y_row["roc_auc"] == approx(1.0)
    assert report["macro_avg"]["f1"] == approx((1 + 2 / 3) / 2)
    assert report["macro_avg"]["recall"] == approx(0.75)
    assert report["macro_avg"]["support"] == 4
    assert report["notes"] == []


def test_multilabel_report_target_without_positives() -> None:
    Y = np.array([[1, 0], [0, 0], [1, 0]])
    P = np.array([[0.9, 0.2], [0.4, 0.6], [0.6, 0.3]])
    report = metric_reports.multilabel_report(Y, P, ["x", "y"])
    assert report["per_target"]["y"]["roc_auc"] is None
    assert report["per_target"]["x"]["roc_auc"] == approx(1.0)
    assert report["macro_avg"]["roc_auc"] is None
    assert any("target 'y'" in n for n in report["notes"])
    _plain(report)
    _dumps(report)


def test_regression_report_by_hand() -> None:
    Y = np.column_stack([Y_REG, [1.0, 2.0, 3.0, 4.0]])
    P = np.column_stack([P_REG, [1.0, 2.0, 3.0, 5.0]])
    report = metric_reports.regression_report(Y, P, ["a", "b"])
    _plain(report)
    a, b = report["per_target"]["a"], report["per_target"]["b"]
    assert a["mse"] == approx(0.375)
    assert a["r2"] == approx(1 - 1.5 / 29.1875)
    # b: one error of 1 -> mse 1/4, mae 1/4, median 0; SS_tot = 2.25+.25+.25+2.25 = 5
    assert (b["mse"], b["mae"], b["median_ae"]) == approx((0.25, 0.25, 0.0))
    assert b["r2"] == approx(1 - 1 / 5)
    assert b["spearman"] == approx(1.0)
    assert report["average"]["mse"] == approx((0.375 + 0.25) / 2)
    assert report["average"]["rmse"] == approx((math.sqrt(0.375) + 0.5) / 2)
    assert report["average"]["r2"] == approx((1 - 1.5 / 29.1875 + 0.8) / 2)
    assert set(report["average"]) == set(metrics.PER_OUTPUT)
    assert report["notes"] == []


def test_regression_report_constant_column_gives_nulls_not_nan() -> None:
    Y = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    P = np.array([[1.0, 5.0], [2.0, 5.0], [3.5, 5.0]])
    report = metric_reports.regression_report(Y, P, ["a", "const"])
    const = report["per_target"]["const"]
    assert const["r2"] == 1.0  # perfect on a constant column: force_finite
    assert const["pearson"] is None
    assert const["spearman"] is None
    assert report["average"]["pearson"] is None
    assert report["average"]["r2"] is not None
    assert any("pearson" in n and "'const'" in n for n in report["notes"])
    _plain(report)
    _dumps(report)


def test_regression_report_accepts_one_column_and_float32() -> None:
    report = metric_reports.regression_report(
        Y_REG.astype(np.float32), P_REG.astype(np.float32), ["target"]
    )
    assert type(report["per_target"]["target"]["mse"]) is float
    assert report["average"]["mae"] == approx(0.5)


def test_regression_report_rejects_nan_predictions() -> None:
    with pytest.raises(DataError, match=r"NaN or infinity \(row 1\)"):
        metric_reports.regression_report(Y_REG, np.array([1.0, np.nan, 2.0, 3.0]), ["t"])


def test_r2_of_a_target_with_a_tiny_relative_spread_gets_a_note() -> None:
    rng = np.random.default_rng(0)
    y = 1e6 + 0.3 * rng.standard_normal(50)  # sd / mean = 3e-7
    report = metric_reports.regression_report(y, y + 0.01, ["y"])
    assert report["notes"] == [
        "R² is meaningless for target(s) 'y': their standard deviation is below 1e-06 of their "
        "mean, so rounding dominates; subtract a reference value from the target (or rescale "
        "it) and retrain."
    ]
    assert metric_reports.regression_report(y - 1e6, y - 1e6 + 0.01, ["y"])["notes"] == []
