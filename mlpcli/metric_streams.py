"""Metric reports over row blocks, for tables larger than memory: `evaluate` and the final
metrics of out-of-core training feed the network's outputs block by block and never hold the
feature matrix.

`ClassificationStream` (binary, multiclass) keeps, however many rows come in, the confusion
matrix, the sums of the log loss and of the Brier score, and for each binary problem behind ROC
AUC and average precision the scores of its positive and of its negative rows (in the outputs'
float dtype: 4 bytes a row per problem for float32). Its report is `classification_report`'s
document on the joined rows (`metric_reports.confusion_report`): counts, accuracy, balanced
accuracy, precision/recall/F1, MCC and ROC AUC are equal exactly (integer counts; ROC AUC as
pairs counted with `searchsorted`); log loss, Brier and average precision up to the order in
which float64 terms are added.

`KeptStream` (multilabel, regression) joins the blocks' outputs and truths (rows x outputs,
never the features) and hands them to the in-memory report: the median absolute error and
Spearman's rho need every value at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from mlpcli.metric_reports import _check_threshold, _names, confusion_report
from mlpcli.metrics import (
    RANKING,
    UndefinedMetricError,
    binary_problems,
    check_problems,
    class_indices,
    confusion_matrix,
    only_1d,
    proba_pair,
)

#: Positive scores looked up at once against the sorted negatives (bounds the temporaries).
LOOKUP_ROWS = 1 << 20


class ReportStream(Protocol):
    """A metric report fed row blocks: `add(truth, outputs)` per block, then `report()`."""

    def add(self, truth: Any, outputs: Any) -> None: ...

    def report(self) -> dict[str, Any]: ...


class ClassificationStream:
    """`classification_report` over blocks of (class indices, probabilities (n, k))."""

    def __init__(
        self,
        labels: Sequence[Any],
        threshold: float = 0.5,
        probabilities: Callable[[NDArray[Any]], NDArray[Any]] | None = None,
        n_rows: int | None = None,
    ) -> None:
        #: The rows to come, when known: each problem's scores then go into one array of that
        #: length (positives from the front, negatives from the back), never joined or copied.
        self.n_rows = n_rows
        self._buffers: list[NDArray[Any]] = []
        self._n_pos: list[int] = []
        self._n_neg: list[int] = []
        #: Turns the outputs given to `add` into (n, k) probabilities (a task's own rule).
        self.probabilities = probabilities
        self.names = _names(labels, len(labels), "labels")
        self.k = len(self.names)
        if self.k == 2:
            _check_threshold(threshold)
        self.threshold = threshold
        self.C = np.zeros((self.k, self.k), np.int64)
        self.log_loss_sum = 0.0
        self.brier_sum = 0.0
        self.problem_names: list[str] = []
        self.positives: list[list[NDArray[Any]]] = []
        self.negatives: list[list[NDArray[Any]]] = []

    def add(self, y_true: Any, proba: Any) -> None:
        if self.probabilities is not None:
            proba = self.probabilities(proba)
        t, P = proba_pair(y_true, proba)
        only_1d(t, "classification_report")
        if P.ndim != 2 or P.shape[1] != self.k:
            raise ValueError(f"expected probabilities of shape (n, {self.k}), got {P.shape}")
        y = class_indices(t, self.k)
        binary = self.k == 2
        y_pred = (P[:, 1] >= self.threshold).astype(np.intp) if binary else P.argmax(axis=1)
        self.C += confusion_matrix(y, y_pred, labels=list(range(self.k)))
        # The terms of metrics.log_loss and metrics.brier, summed here and divided at the end.
        eps = np.finfo(P.dtype).eps
        p_true = np.clip(P[np.arange(len(y)), y], eps, 1 - eps).astype(np.float64)
        self.log_loss_sum += float(-np.sum(np.log(p_true)))
        if binary:
            self.brier_sum += float(np.sum((P[:, 1].astype(np.float64) - (y == 1)) ** 2))
        else:
            D = P.astype(np.float64)
            D[np.arange(len(y)), y] -= 1.0
            self.brier_sum += float(np.sum(np.sum(D * D, axis=1)))
        problems = binary_problems(t, P, self.names)
        if not self.problem_names:
            self.problem_names = [name for name, _, _ in problems]
            self.positives = [[] for _ in problems]
            self.negatives = [[] for _ in problems]
        if self.n_rows is not None and not self._buffers:
            self._buffers = [np.empty(self.n_rows, score.dtype) for _, _, score in problems]
            self._n_pos = [0] * len(problems)
            self._n_neg = [0] * len(problems)
        for j, (_, positive, score) in enumerate(problems):
            if not self._buffers:
                self.positives[j].append(score[positive])
                self.negatives[j].append(score[~positive])
                continue
            buffer, pos, neg = self._buffers[j], score[positive], score[~positive]
            if self._n_pos[j] + self._n_neg[j] + len(score) > len(buffer):
                raise ValueError(f"more than the {len(buffer)} rows announced")
            buffer[self._n_pos[j] : self._n_pos[j] + len(pos)] = pos
            self._n_pos[j] += len(pos)
            self._n_neg[j] += len(neg)
            buffer[len(buffer) - self._n_neg[j] : len(buffer) - self._n_neg[j] + len(neg)] = neg

    def report(self) -> dict[str, Any]:
        n = int(self.C.sum())
        if n == 0:
            raise ValueError("no rows were added")
        pairs = self._pairs()
        counts = [
            (name, len(pos), len(pos) + len(neg))
            for name, (pos, neg) in zip(self.problem_names, pairs, strict=True)
        ]
        notes: list[str] = []
        rankings: dict[str, float | None] = {}
        for key, fn in (("roc_auc", roc_auc), ("average_precision", average_precision)):
            _, title, needs_negatives = RANKING[key]
            try:
                check_problems(counts, title, needs_negatives)
                rankings[key] = float(np.mean([fn(pos, neg) for pos, neg in pairs]))
            except UndefinedMetricError as e:
                notes.append(f"{key} is null: {e.reason}")
                rankings[key] = None
        return confusion_report(
            self.C, self.names, self.threshold, rankings, notes,
            self.log_loss_sum / n, self.brier_sum / n,
        )  # fmt: skip

    def _pairs(self) -> list[tuple[NDArray[Any], NDArray[Any]]]:
        """Each problem's (positive scores, negative scores), sorted."""
        if not self._buffers:
            return [
                (_sorted(pos), _sorted(neg))
                for pos, neg in zip(self.positives, self.negatives, strict=True)
            ]
        pairs = []
        for buffer, n_pos, n_neg in zip(self._buffers, self._n_pos, self._n_neg, strict=True):
            pos, neg = buffer[:n_pos], buffer[len(buffer) - n_neg :]
            pos.sort()
            neg.sort()
            pairs.append((pos, neg))
        return pairs


def _sorted(blocks: list[NDArray[Any]]) -> NDArray[Any]:
    """The blocks joined and sorted in place; the list is emptied (one copy at a time)."""
    joined = np.concatenate(blocks)
    blocks.clear()
    joined.sort()
    return joined


def roc_auc(positives: NDArray[Any], negatives: NDArray[Any]) -> float:
    """ROC AUC from the sorted scores of the positive and of the negative rows: the pairs
    (positive, negative) ordered correctly, a tie counting one half, as whole counts."""
    twice = 0
    for start in range(0, len(positives), LOOKUP_ROWS):
        block = positives[start : start + LOOKUP_ROWS]
        twice += int(np.searchsorted(negatives, block, "left").sum())
        twice += int(np.searchsorted(negatives, block, "right").sum())
    return (twice / 2) / (len(positives) * len(negatives))


def average_precision(positives: NDArray[Any], negatives: NDArray[Any]) -> float:
    """Average precision from the sorted scores of the positive and of the negative rows:
    sum over the distinct positive scores s, from the highest, of (recall(s) - recall(previous))
    x precision(s), precision and recall of the rule "score >= s"."""
    n_pos, n_neg = len(positives), len(negatives)
    descending = positives[::-1]
    total, tp_before, recall_before = 0.0, 0, 0.0
    start = 0
    while start < n_pos:
        stop = min(start + LOOKUP_ROWS, n_pos)
        # Cut after a whole group of equal scores: the positives >= the block's last score.
        stop = n_pos - int(np.searchsorted(positives, descending[stop - 1], "left"))
        block = descending[start:stop]
        ends = np.r_[np.flatnonzero(block[1:] != block[:-1]), len(block) - 1]
        tp = tp_before + ends + 1
        fp = n_neg - np.searchsorted(negatives, block[ends], "left")
        recall = tp / n_pos
        total += float(np.sum(np.diff(recall, prepend=recall_before) * (tp / (tp + fp))))
        tp_before, recall_before, start = int(tp[-1]), float(recall[-1]), stop
    return total


class KeptStream:
    """A report over blocks that needs every row at once: the blocks' outputs and truths are
    joined (rows x outputs) and given to `report(outputs, truth)`."""

    def __init__(self, report: Callable[[NDArray[Any], NDArray[Any]], dict[str, Any]]) -> None:
        self._report = report
        self.outputs: list[NDArray[Any]] = []
        self.truths: list[NDArray[Any]] = []

    def add(self, truth: NDArray[Any], outputs: NDArray[Any]) -> None:
        self.truths.append(truth)
        self.outputs.append(outputs)

    def report(self) -> dict[str, Any]:
        return self._report(np.concatenate(self.outputs), np.concatenate(self.truths))
