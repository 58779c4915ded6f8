"""The classification report sorts each binary problem's score once for both ranking metrics:
the same values as each metric computing its own order."""

from __future__ import annotations

import numpy as np
import pytest

from mlpcli import metrics
from mlpcli.metric_reports import classification_report


@pytest.mark.parametrize("k", [2, 3, 5])
def test_report_rankings_equal_the_metrics_computed_alone(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 2_000
    y = rng.integers(0, k, n)
    logits = rng.standard_normal((n, k)).astype(np.float32)
    logits[:, 0] = np.round(logits[:, 0], 1)  # ties in the scores
    P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    report = classification_report(y, P, [f"c{i}" for i in range(k)])
    assert report["roc_auc"] == metrics.roc_auc(y, P)
    assert report["average_precision"] == metrics.average_precision(y, P)


def test_rankdata_with_a_given_order_is_rankdata() -> None:
    x = np.array([0.5, 0.5, 0.2, 0.9, 0.2])
    order = metrics.stable_order(x)
    assert metrics.rankdata(x, order).tolist() == metrics.rankdata(x).tolist()
