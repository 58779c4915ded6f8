"""The task classes: decisions, probability columns, truth and defaults, checked by hand; and
every metric scoring each task it applies to through the task's own conversions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mlpcli import config, metrics
from mlpcli import task as tasks
from mlpcli.errors import DataError, UsageError
from mlpcli.nn.losses import LOSSES

NAMES = sorted(tasks.TASKS)


class _Encoder:
    """What the task methods read from a target encoder: labels, targets, decode."""

    def __init__(self, labels: list[str], targets: list[str]) -> None:
        self.labels, self.targets = labels, targets

    def decode(self, output: Any, threshold: float = 0.5) -> Any:
        return np.asarray(output, dtype=np.float64) * 2.0 + 10.0


def test_config_offers_auto_and_every_task() -> None:
    assert ("auto", *tasks.TASKS) == config.TASKS


def test_unknown_task_lists_the_choices() -> None:
    with pytest.raises(UsageError, match="Unknown task 'ordinal'; choose one of: binary, "):
        tasks.get("ordinal")


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_registry_names_match_and_defaults_pair(name: str) -> None:
    task = tasks.get(name)
    assert task.name == name
    # The default loss pairs with the task's default output activation.
    assert LOSSES[task.default_loss].output_activation == task.output_activation
    assert name in task.metric(None).tasks


def test_binary_decides_at_the_threshold_and_has_two_probability_columns() -> None:
    P = np.array([[0.2], [0.5], [0.9]], dtype=np.float32)
    binary = tasks.get("binary")
    assert binary.decide(P).tolist() == [0, 1, 1]
    assert binary.decide(P, threshold=0.95).tolist() == [0, 0, 0]
    columns = binary.proba_columns(["no", "yes"], P)
    assert list(columns) == ["proba_no", "proba_yes"]
    np.testing.assert_allclose(columns["proba_no"], [0.8, 0.5, 0.1], rtol=1e-6)
    assert columns["proba_yes"].dtype == np.float32
    y = np.array([0, 1, 1])
    ((label, positives, score),) = binary.one_vs_rest(y, binary.probabilities(P), ["no", "yes"])
    assert label == "yes" and positives.tolist() == [False, True, True]
    np.testing.assert_array_equal(score, P[:, 0])


def test_multiclass_argmax_and_its_own_columns() -> None:
    P = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    multiclass = tasks.get("multiclass")
    assert multiclass.decide(P, threshold=0.99).tolist() == [1, 0]  # no threshold
    assert list(multiclass.proba_columns(["a", "b", "c"], P)) == ["proba_a", "proba_b", "proba_c"]
    curves = multiclass.one_vs_rest(np.array([1, 0]), P, ["a", "b", "c"])
    assert [c[0] for c in curves] == ["a", "b", "c"]
    assert curves[0][1].tolist() == [False, True]


def test_multilabel_decides_each_column_and_truth_is_integer() -> None:
    P = np.array([[0.4, 0.6], [0.5, 0.1]])
    multilabel = tasks.get("multilabel")
    assert multilabel.decide(P).tolist() == [[0, 1], [1, 0]]
    truth = multilabel.truth(_Encoder(["x", "z"], ["x", "z"]), None, np.array([[0.0, 1.0]]))
    assert truth.dtype == np.intp and truth.tolist() == [[0, 1]]


def test_regression_has_no_probabilities_and_scores_in_original_units() -> None:
    regression = tasks.get("regression")
    encoder = _Encoder([], ["y"])
    P = np.array([[0.0], [1.0]])
    assert regression.proba_columns([], P) == {}
    assert regression.truth(encoder, None, P).tolist() == [[10.0], [12.0]]
    assert regression.predictions("values", encoder, P).tolist() == [[10.0], [12.0]]
    assert not regression.has_threshold and not regression.stratified


def _fold(name: str, rng: np.random.Generator) -> tuple[_Encoder, Any, Any, Any]:
    """(encoder, y_index, encoded Y, outputs P) of 40 rows with every class present."""
    n = 40
    if name == "regression":
        Y = rng.normal(size=(n, 2))
        return _Encoder([], ["u", "v"]), None, Y, Y + rng.normal(scale=0.3, size=(n, 2))
    if name == "multilabel":
        Y = np.tile([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], (n // 4, 1))
        P = np.clip(Y + rng.normal(scale=0.3, size=Y.shape), 0.01, 0.99)
        return _Encoder(["x", "z"], ["x", "z"]), Y.astype(np.intp), Y, P
    k = 2 if name == "binary" else 3
    y = np.arange(n) % k
    logits = np.eye(k)[y] * 2.0 + rng.normal(size=(n, k))
    P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if name == "binary":
        return _Encoder(["a", "b"], ["t"]), y, y[:, None].astype(float), P[:, 1:]
    return _Encoder(["a", "b", "c"], ["t"]), y, np.eye(k)[y], P


@pytest.mark.parametrize(
    ("metric_name", "name"),
    [(m, t) for m, metric in metrics.METRICS.items() for t in NAMES if t in metric.tasks],
    ids=lambda v: str(v),
)
def test_every_metric_scores_each_of_its_tasks(
    metric_name: str, name: str, rng: np.random.Generator
) -> None:
    task, metric = tasks.get(name), metrics.get(metric_name)
    encoder, y_index, Y, P = _fold(name, rng)
    y_true = task.truth(encoder, y_index, Y)  # type: ignore[arg-type]
    score = metric(y_true, task.predictions(metric.needs, encoder, P))  # type: ignore[arg-type]
    assert math.isfinite(score)


def test_plot_truth_gives_each_task_its_shape_and_checks_class_indices() -> None:
    y = np.array([0, 1, 1, 0])
    for name in ("binary", "multiclass"):
        got = tasks.get(name).plot_truth(y[:, None], 2)
        assert got.dtype == np.intp and got.tolist() == [0, 1, 1, 0]
        with pytest.raises(DataError, match=r"Class indices must lie in 0\.\.1\."):
            tasks.get(name).plot_truth(np.array([0, 2]), 2)
    multilabel = tasks.get("multilabel").plot_truth(np.array([[0, 1], [1, 1]]), 2)
    assert multilabel.dtype == np.intp and multilabel.shape == (2, 2)
    regression = tasks.get("regression").plot_truth(np.array([1, 2, 3]), 1)
    assert regression.dtype == np.float64 and regression.shape == (3, 1)


def test_only_multiclass_curves_are_one_vs_rest_and_each_kind_has_its_plots() -> None:
    from mlpcli import plotting

    assert [n for n in NAMES if tasks.get(n).curves_one_vs_rest] == ["multiclass"]
    assert {n: tasks.get(n).kind for n in NAMES} == {
        "binary": "classification",
        "multiclass": "classification",
        "multilabel": "multilabel",
        "regression": "regression",
    }
    assert plotting.EVALUATION_PLOTS["multilabel"]["confusion_matrix"] is (
        plotting.multilabel_confusion_figure
    )
    assert list(plotting.EVALUATION_PLOTS["regression"]) == ["predicted_vs_true", "residuals"]
