"""What a task means, once: one class per task (binary, multiclass, multilabel, regression).

Each class holds its default loss and output activation, the metric tracked every epoch, the
decision rule and its threshold, the probability columns, what metrics compare against, and its
metric report. The rest of the code asks the task object (`get(name)`) instead of branching on
the task's name, so adding a task is one class and one registry entry.

Network outputs `P` are (n, 1) for binary (P(labels[1])), (n, k) softmax for multiclass,
(n, t) sigmoids for multilabel and (n, t) standardised values for regression.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
from numpy.typing import NDArray

from mlpcli import metric_reports, metric_streams, metrics
from mlpcli.errors import DataError, choose

if TYPE_CHECKING:  # the encoder's module imports this one
    from mlpcli.target_encoding import TargetEncoder

#: p >= THRESHOLD means positive, unless `--threshold` says otherwise.
THRESHOLD = 0.5


class Task:
    """The behaviour shared by the classification tasks; regression overrides what differs."""

    name: ClassVar[str]
    classification: ClassVar[bool] = True
    #: Loss and output activation when `--loss` / `--output-activation` are `auto`.
    default_loss: ClassVar[str]
    output_activation: ClassVar[str]
    #: Tracked every epoch, and the default `--metric` of cv, tune and explain.
    default_metric: ClassVar[str]
    #: The headline of the HTML report's summary cards, as named in its flattened metric table.
    card_metric: ClassVar[str] = "accuracy"
    #: Whether folds and validation splits keep the class proportions.
    stratified: ClassVar[bool] = False
    #: Whether `--threshold` applies (one sigmoid per decision).
    has_threshold: ClassVar[bool] = False
    #: Whether `train --calibrate` applies (one softmax or sigmoid over exclusive classes).
    calibrates: ClassVar[bool] = False
    #: Whether `train --threshold auto` can choose the threshold (one positive class).
    picks_threshold: ClassVar[bool] = False
    #: One label is "the positive class" (--positive-class; sensitivity and specificity).
    has_positive_class: ClassVar[bool] = False
    #: Many labels with few samples each are suspicious (an ID or a measurement as --target).
    checks_class_count: ClassVar[bool] = False
    #: The family whose report tables and evaluation plots the task shares.
    kind: ClassVar[str] = "classification"
    #: ROC and precision-recall curves are each class against the others.
    curves_one_vs_rest: ClassVar[bool] = False

    def decide(self, P: NDArray[Any], threshold: float = THRESHOLD) -> NDArray[Any]:
        """Network outputs to decisions: class indices (n,), a 0/1 matrix (n, t), or values."""
        raise NotImplementedError

    def probabilities(self, P: NDArray[Any]) -> NDArray[Any]:
        """One probability column per label (the network's own columns by default)."""
        return P

    def proba_columns(self, labels: Sequence[str], P: NDArray[Any]) -> dict[str, NDArray[Any]]:
        """`proba_<label>` columns of the prediction tables."""
        probabilities = self.probabilities(P)
        return {f"proba_{label}": probabilities[:, j] for j, label in enumerate(labels)}

    def truth(
        self, encoder: TargetEncoder, y_index: NDArray[Any] | None, Y: NDArray[Any]
    ) -> NDArray[Any]:
        """What metrics compare against, from encoded targets: class indices by default
        (every classification encoding has them; only regression's are None)."""
        return cast("NDArray[Any]", y_index)

    def predictions(
        self, needs: str, encoder: TargetEncoder, P: NDArray[Any], threshold: float = THRESHOLD
    ) -> NDArray[Any]:
        """Network outputs as a metric of the given `needs` wants them (decisions at the
        threshold)."""
        return self.decide(P, threshold) if needs == "labels" else self.probabilities(P)

    def plot_truth(self, y: NDArray[Any], width: int) -> NDArray[Any]:
        """True values as the plots take them: class indices (n,) within the `width`
        probability columns by default."""
        y = y.ravel().astype(np.intp)
        if y.size and (y.min() < 0 or y.max() >= width):
            raise DataError(f"Class indices must lie in 0..{width - 1}.")
        return y

    def metric(self, name: str | None) -> metrics.Metric:
        """The named metric, or the task's default; applicability is the caller's to check."""
        return metrics.get(name or self.default_metric)

    def epoch_score(self, Y: NDArray[Any], P: NDArray[Any]) -> float:
        """The default metric on encoded targets and outputs, as the training loop tracks it:
        R^2 is scale-free, so standardised regression targets give the same value."""
        return self.metric(None)(self.decide(Y), self.decide(P))

    def report(
        self,
        encoder: TargetEncoder,
        P: NDArray[Any],
        truth: NDArray[Any],
        threshold: float = THRESHOLD,
    ) -> dict[str, Any]:
        """Every metric of the task, in the original label space or units; `truth` as
        `truth()` gives it (regression: values in original units)."""
        proba = self.probabilities(P)
        return metric_reports.classification_report(truth, proba, encoder.labels, threshold)

    def report_stream(
        self, encoder: TargetEncoder, threshold: float = THRESHOLD, n_rows: int | None = None
    ) -> metric_streams.ReportStream:
        """`report` over row blocks, fed `add(truth, P)` per block (`metric_streams`): the
        classification metrics keep counts and scores, never the features. `n_rows`, when
        known, lets the scores go into one array each."""
        return metric_streams.ClassificationStream(
            encoder.labels, threshold, self.probabilities, n_rows
        )

    def one_vs_rest(
        self, y: NDArray[Any], P: NDArray[Any], labels: Sequence[str]
    ) -> list[tuple[str, NDArray[np.bool_], NDArray[Any]]]:
        """(name, positives, score) per ROC/PR curve, from one probability column per label."""
        return [(name, y[:, j] == 1, P[:, j]) for j, name in enumerate(labels)]


class Binary(Task):
    """Two classes, one sigmoid output: the probability of labels[1]."""

    name = "binary"
    default_loss = "bce"
    output_activation = "sigmoid"
    default_metric = "accuracy"
    stratified = True
    has_threshold = True
    calibrates = True
    picks_threshold = True
    has_positive_class = True

    def decide(self, P: NDArray[Any], threshold: float = THRESHOLD) -> NDArray[Any]:
        return (P[:, 0] >= threshold).astype(np.intp)

    def probabilities(self, P: NDArray[Any]) -> NDArray[Any]:
        """The single output P(labels[1]) becomes the two columns of labels[0] and labels[1]."""
        return np.column_stack([1.0 - P[:, 0], P[:, 0]])

    def one_vs_rest(
        self, y: NDArray[Any], P: NDArray[Any], labels: Sequence[str]
    ) -> list[tuple[str, NDArray[np.bool_], NDArray[Any]]]:
        return [(labels[1], y == 1, P[:, 1])]


class Multiclass(Task):
    """k >= 2 classes, one softmax output each."""

    name = "multiclass"
    default_loss = "ce"
    output_activation = "softmax"
    default_metric = "accuracy"
    stratified = True
    calibrates = True
    checks_class_count = True
    curves_one_vs_rest = True

    def decide(self, P: NDArray[Any], threshold: float = THRESHOLD) -> NDArray[Any]:
        return np.asarray(P.argmax(axis=1))

    def one_vs_rest(
        self, y: NDArray[Any], P: NDArray[Any], labels: Sequence[str]
    ) -> list[tuple[str, NDArray[np.bool_], NDArray[Any]]]:
        return [(name, y == k, P[:, k]) for k, name in enumerate(labels)]


class Multilabel(Task):
    """Several 0/1 targets, one sigmoid output each; labels are the target names."""

    name = "multilabel"
    default_loss = "bce"
    output_activation = "sigmoid"
    #: Accuracy of 0/1 matrices is subset accuracy (scikit-learn's `ClassifierMixin.score`).
    default_metric = "accuracy"
    card_metric = "subset_accuracy"
    has_threshold = True
    kind = "multilabel"

    def decide(self, P: NDArray[Any], threshold: float = THRESHOLD) -> NDArray[Any]:
        return (np.asarray(P) >= threshold).astype(np.intp)

    def truth(
        self, encoder: TargetEncoder, y_index: NDArray[Any] | None, Y: NDArray[Any]
    ) -> NDArray[Any]:
        return Y.astype(np.intp)

    def plot_truth(self, y: NDArray[Any], width: int) -> NDArray[Any]:
        return y.reshape(len(y), -1).astype(np.intp)

    def report(
        self,
        encoder: TargetEncoder,
        P: NDArray[Any],
        truth: NDArray[Any],
        threshold: float = THRESHOLD,
    ) -> dict[str, Any]:
        return metric_reports.multilabel_report(truth, P, encoder.labels, threshold)

    def report_stream(
        self, encoder: TargetEncoder, threshold: float = THRESHOLD, n_rows: int | None = None
    ) -> metric_streams.ReportStream:
        return metric_streams.KeptStream(lambda P, truth: self.report(encoder, P, truth, threshold))


class Regression(Task):
    """Numeric targets; the network predicts them standardised, decoded to original units."""

    name = "regression"
    classification = False
    default_loss = "mse"
    output_activation = "identity"
    default_metric = "r2"
    card_metric = "average r2"
    kind = "regression"

    def decide(self, P: NDArray[Any], threshold: float = THRESHOLD) -> NDArray[Any]:
        return P

    def proba_columns(self, labels: Sequence[str], P: NDArray[Any]) -> dict[str, NDArray[Any]]:
        return {}

    def plot_truth(self, y: NDArray[Any], width: int) -> NDArray[Any]:
        return y.astype(np.float64).reshape(len(y), -1)

    def truth(
        self, encoder: TargetEncoder, y_index: NDArray[Any] | None, Y: NDArray[Any]
    ) -> NDArray[Any]:
        return encoder.decode(Y)

    def predictions(
        self, needs: str, encoder: TargetEncoder, P: NDArray[Any], threshold: float = THRESHOLD
    ) -> NDArray[Any]:
        return encoder.decode(P)

    def report(
        self,
        encoder: TargetEncoder,
        P: NDArray[Any],
        truth: NDArray[Any],
        threshold: float = THRESHOLD,
    ) -> dict[str, Any]:
        return metric_reports.regression_report(truth, encoder.decode(P), encoder.targets)

    def report_stream(
        self, encoder: TargetEncoder, threshold: float = THRESHOLD, n_rows: int | None = None
    ) -> metric_streams.ReportStream:
        return metric_streams.KeptStream(lambda P, truth: self.report(encoder, P, truth, threshold))


#: task name -> its behaviour (instances: the classes hold no state).
TASKS: dict[str, Task] = {t.name: t for t in (Binary(), Multiclass(), Multilabel(), Regression())}


def get(name: str) -> Task:
    """The task called `name`, or a UsageError that lists the choices."""
    return cast(Task, choose("task", name, cast(dict[str, object], TASKS)))
