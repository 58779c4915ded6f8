"""Streamed metric reports equal the in-memory ones on tables that fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import assert_documents_close

from mlpcli import metric_streams
from mlpcli.metric_reports import classification_report


def _streamed(
    y: np.ndarray, P: np.ndarray, labels: list[str], block: int, cut: float, known: bool = False
) -> Any:
    """The streamed report in blocks; `known`: the row count is announced (one array)."""
    stream = metric_streams.ClassificationStream(labels, cut, n_rows=len(y) if known else None)
    for start in range(0, len(y), block):
        stream.add(y[start : start + block], P[start : start + block])
    return stream.report()


@pytest.mark.parametrize("k", [2, 3, 5], ids=["binary", "3 classes", "5 classes"])
@pytest.mark.parametrize("block", [1, 7, 1000, 10**6], ids=lambda b: f"blocks of {b}")
def test_the_streamed_classification_report_equals_the_in_memory_one(k: int, block: int) -> None:
    rng = np.random.default_rng(k)
    n = 3000
    # Scores rounded to a few values: many ties, within and across blocks.
    P = np.round(rng.dirichlet(np.ones(k), size=n), 2).astype(np.float32)
    P /= P.sum(axis=1, keepdims=True)
    y = rng.integers(0, k, size=n)
    labels = [f"c{i}" for i in range(k)]
    whole = classification_report(y, P, labels, 0.4)
    assert_documents_close(_streamed(y, P, labels, block, 0.4), whole)
    assert_documents_close(_streamed(y, P, labels, block, 0.4, known=True), whole)
    assert whole["roc_auc"] is not None and whole["average_precision"] is not None


def test_lookups_in_pieces_give_the_same_rankings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ties that straddle a lookup piece (LOOKUP_ROWS) are one threshold, as in memory."""
    rng = np.random.default_rng(5)
    P = np.round(rng.dirichlet(np.ones(2), size=4000), 1).astype(np.float32)
    P /= P.sum(axis=1, keepdims=True)
    y = rng.integers(0, 2, size=4000)
    whole = classification_report(y, P, ["a", "b"])
    monkeypatch.setattr(metric_streams, "LOOKUP_ROWS", 3)
    assert_documents_close(_streamed(y, P, ["a", "b"], 500, 0.5), whole)


def test_undefined_rankings_and_absent_classes_give_the_same_notes() -> None:
    P = np.array([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])
    y = np.array([0, 0, 2, 2])  # class 1 never occurs: ROC AUC undefined
    whole = classification_report(y, P, ["a", "b", "c"])
    assert whole["roc_auc"] is None and whole["notes"]
    assert_documents_close(_streamed(y, P, ["a", "b", "c"], 3, 0.5), whole)


def test_kept_stream_joins_the_blocks() -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    stream = metric_streams.KeptStream(lambda P, t: seen.append((P, t)) or {})
    stream.add(np.array([1.0]), np.array([[2.0]]))
    stream.add(np.array([3.0]), np.array([[4.0]]))
    stream.report()
    np.testing.assert_array_equal(seen[0][0], [[2.0], [4.0]])
    np.testing.assert_array_equal(seen[0][1], [1.0, 3.0])
