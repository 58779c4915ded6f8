"""Probability calibration: temperature scaling and the measures that judge it (issue 14).

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") divides the
logits by one scalar T > 0 fitted on the validation rows, p = softmax(z / T): T > 1 softens an
over-confident network, and the predicted class never changes. For a sigmoid output the logit
column z is scaled the same way, p = sigmoid(z / T).

    log loss   -mean_i log p_i[y_i]
    ECE        sum_b (n_b / n) |accuracy_b - confidence_b| over equal-width confidence bins
               (confidence = the top probability; 15 bins as in Guo et al.)

T minimises the validation log loss; the loss is convex in 1/T, so a bracketing search on log T
finds it to within 1e-6 relative.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def _as_logits(Z: ArrayLike) -> Array:
    """(n, k) logits for a softmax, or the (n, 1) logit of a sigmoid as (n, 2) [0, z]."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] == 0:
        raise ValueError(f"expected logits of shape (n, k), got {Z.shape}")
    return np.hstack([np.zeros_like(Z), Z]) if Z.shape[1] == 1 else Z


def _softmax(Z: Array) -> Array:
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def probabilities(Z: ArrayLike, temperature: float = 1.0) -> Array:
    """softmax(Z / T) as (n, k); a one-column (sigmoid) Z gives (n, 2) [1 - p, p]."""
    return _softmax(_as_logits(Z) / temperature)


def log_loss(P: ArrayLike, y: ArrayLike) -> float:
    """-mean log P[i, y_i] for class indices y, with P clipped away from 0."""
    P = np.asarray(P, dtype=np.float64)
    y = np.asarray(y, dtype=np.intp)
    picked = np.clip(P[np.arange(len(y)), y], 1e-300, 1.0)
    return float(-np.mean(np.log(picked)))


def expected_calibration_error(P: ArrayLike, y: ArrayLike, n_bins: int = 15) -> float:
    """sum_b (n_b / n) |accuracy_b - confidence_b|, bins (b/B, (b+1)/B] of the top probability."""
    P = np.asarray(P, dtype=np.float64)
    y = np.asarray(y, dtype=np.intp)
    confidence = P.max(axis=1)
    correct = (P.argmax(axis=1) == y).astype(np.float64)
    # bin b holds confidences in (b/B, (b+1)/B]; a confidence of exactly 0 cannot occur (>= 1/k)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.intp) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        members = bins == b
        total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / len(y))


def fit_temperature(Z: ArrayLike, y: ArrayLike, low: float = 1e-2, high: float = 1e2) -> float:
    """The T in [low, high] that minimises log_loss(softmax(Z / T), y) on these rows.

    Golden-section search on log T (the loss is unimodal in T: convex in 1/T), to 1e-6 relative.
    """
    Z, y = _as_logits(Z), np.asarray(y, dtype=np.intp)

    def loss(log_t: float) -> float:
        return log_loss(_softmax(Z / math.exp(log_t)), y)

    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > 1e-6:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return math.exp((a + b) / 2.0)
