"""Probability calibration: temperature scaling and the measures that judge it (issue 14).

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") divides the
logits by one scalar T > 0 fitted on the validation rows, p = softmax(z / T): T > 1 softens an
over-confident network, and the predicted class never changes. For a sigmoid output the logit
column z is scaled the same way, p = sigmoid(z / T).

    log loss   -mean_i log p_i[y_i]
    ECE        sum_b (n_b / n) |accuracy_b - confidence_b| over equal-width confidence bins
               (confidence = the top probability; 15 bins as in Guo et al.)

T minimises the validation log loss; the loss is convex in 1/T, so a bracketing search on log T
finds it to within 1e-6 relative. A model applies T by dividing its output layer's W and b by T
(`fold_temperature`): z / T = X (W / T) + b / T, so predict, evaluate, explain (gradients too)
and the ONNX export all see the calibrated outputs from one place.

The decision threshold of a binary model (`train --threshold auto`) is chosen on the validation
rows too, by a rule of `THRESHOLD_METRICS`:

    youden     J = sensitivity + specificity - 1 = TPR - FPR     (Youden 1950)
    f1         2 precision recall / (precision + recall)

over every distinct validation score s_k (positive when p >= s_k); the best (the highest s_k
on ties) becomes the midpoint between s_k and the next lower distinct score, so the cut falls
between the validation rows rather than on one of them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mlpcli import task as tasks
from mlpcli.errors import DataError, UsageError

if TYPE_CHECKING:
    from mlpcli.config import Settings
    from mlpcli.nn.network import MLP

Array = NDArray[np.float64]


def _as_logits(Z: ArrayLike) -> Array:
    """(n, k) logits for a softmax, or the (n, 1) logit of a sigmoid as (n, 2) [0, z]."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] == 0:
        raise ValueError(f"expected logits of shape (n, k), got {Z.shape}")
    return np.hstack([np.zeros_like(Z), Z]) if Z.shape[1] == 1 else Z


def _softmax(Z: Array) -> Array:
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    softmax: NDArray[np.float64] = E / E.sum(axis=1, keepdims=True)
    return softmax


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


# --------------------------------------------------------------------------- a network's logits
def logits(net: MLP, X: NDArray[Any], batch_size: int = 65536) -> Array:
    """The output layer's pre-activations z (before sigmoid/softmax) in float64, in inference
    mode (no dropout, running batch-norm statistics)."""
    if hasattr(net, "member_outputs"):  # a --preset recipe network
        from mlpcli.presets import single_logits

        return single_logits(net, X)  # type: ignore[arg-type]
    X = net._as_input(X)
    out = np.empty((len(X), net.architecture.n_outputs), dtype=np.float64)
    for start in range(0, len(X), batch_size):
        # _logits returns the output layer's scratch buffer: copy before the next batch
        out[start : start + batch_size] = net._logits(X[start : start + batch_size], False, None)
    return out


def fold_temperature(net: MLP, temperature: float) -> None:
    """Divide the output layer's W and b by T in place: the network then outputs
    sigmoid(z / T) or softmax(z / T) everywhere it is used."""
    dense = net.layers[-1]
    for param in dense.params:
        param /= net.dtype.type(temperature)


def calibrated_copy(net: MLP, temperature: float | None) -> MLP:
    """The network itself when T is None, else a copy with T folded in (the original keeps
    the trained weights that the model file stores)."""
    if temperature is None:
        return net
    calibrated = copy.deepcopy(net)
    fold_temperature(calibrated, temperature)
    return calibrated


def quality(Z: ArrayLike, y: ArrayLike, temperature: float = 1.0) -> dict[str, float]:
    """Log loss and ECE of softmax(Z / T) against class indices y."""
    P = probabilities(Z, temperature)
    return {"log_loss": log_loss(P, y), "ece": expected_calibration_error(P, y)}


# --------------------------------------------------------------------------- thresholds
def _youden(tps: Array, fps: Array) -> Array:
    youden: Array = tps / tps[-1] - fps / fps[-1]
    return youden


def _f1(tps: Array, fps: Array) -> Array:
    # 2 TP / (2 TP + FP + FN), with FN = P - TP: no division by zero while P > 0
    f1: Array = 2.0 * tps / (tps + fps + tps[-1])
    return f1


#: --threshold-metric name -> the metric at each distinct score, from the true and false
#: positives counted at and above it (highest score first).
THRESHOLD_METRICS: dict[str, Callable[[Array, Array], Array]] = {"youden": _youden, "f1": _f1}


@dataclass(frozen=True)
class ChosenThreshold:
    threshold: float
    metric: str
    value: float  # the metric on the validation rows at that threshold


def choose_threshold(y: ArrayLike, p: ArrayLike, metric: str = "youden") -> ChosenThreshold:
    """The decision threshold on P(positive) `p` that maximises `metric` on these rows (y = 1
    for the positive class); both classes must be present."""
    rule = THRESHOLD_METRICS[metric]
    positive = np.asarray(y).ravel() == 1
    score = np.asarray(p, dtype=np.float64).ravel()
    if positive.all() or not positive.any():
        raise ValueError("choosing a threshold needs both classes among the rows")
    order = np.argsort(-score, kind="mergesort")
    s, y = score[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last row of each distinct score
    tps = np.cumsum(y, dtype=np.float64)[last]
    fps = (last + 1) - tps
    values = rule(tps, fps)
    k = int(np.argmax(values))  # the first maximum: the highest threshold on ties
    scores = s[last]
    cut = scores[k] if k + 1 == len(scores) else (scores[k] + scores[k + 1]) / 2.0
    return ChosenThreshold(float(cut), metric, float(values[k]))


# --------------------------------------------------------------------------- after training
#: The model file's (and the metrics JSON's) entries written by `fit_posthoc`.
METADATA_KEYS = ("calibration", "threshold")


@dataclass
class PostHoc:
    """What training adds after the last epoch: the network to score with (T folded in),
    the decision threshold, and the model file's `calibration` / `threshold` entries."""

    net: MLP
    threshold: float
    metadata: dict[str, Any]


def check_options(settings: Settings, task: str, has_validation: bool) -> None:
    """Refuse, before training, what `--calibrate` and `--threshold` cannot do here."""
    spec = tasks.get(task)
    t = settings.train
    # (asked for, option, applies to this task, the tasks it applies to, fitted on validation)
    asked = [
        (t.calibrate, "--calibrate", spec.calibrates, "binary or multiclass", True),
        (t.threshold == "auto", "--threshold auto", spec.picks_threshold, "binary", True),
        (
            isinstance(t.threshold, float),
            "--threshold",
            spec.has_threshold,
            "binary or multilabel",
            False,
        ),
    ]
    for given, option, applies, kinds, fitted in asked:
        if given and not applies:
            raise UsageError(f"{option} applies to {kinds} tasks, but the task is {task}.")
        if given and fitted and not has_validation:
            raise UsageError(
                f"{option} is fitted on the validation rows, but there are none; set "
                "--valid-fraction above 0 or give --valid-file."
            )


def fit_posthoc(
    settings: Settings, task: str, net: MLP, X_val: NDArray[Any] | None, y_val: Any
) -> PostHoc:
    """Temperature (`--calibrate`) and threshold (`--threshold`) from the validation rows, in
    that order: the threshold is chosen on the calibrated probabilities it will be applied to."""
    t = settings.train
    check_options(settings, task, X_val is not None)
    meta: dict[str, Any] = {}
    scored, cut = net, tasks.THRESHOLD
    if t.calibrate and X_val is not None:
        Z = logits(net, X_val)
        T = fit_temperature(Z, y_val)
        meta["calibration"] = {
            "method": "temperature",
            "temperature": T,
            "n_rows": len(X_val),
            "before": quality(Z, y_val),
            "after": quality(Z, y_val, T),
        }
        scored = calibrated_copy(net, T)
    if t.threshold == "auto" and X_val is not None:
        p = scored.forward(X_val)[:, 0]
        try:
            chosen = choose_threshold(y_val, p, t.threshold_metric)
        except ValueError:
            raise DataError(
                "--threshold auto needs both classes among the validation rows; use a larger "
                "--valid-fraction or give a fixed --threshold."
            ) from None
        cut = chosen.threshold
        meta["threshold"] = {
            "value": cut,
            "metric": chosen.metric,
            "score": chosen.value,
            "n_rows": len(X_val),
        }
    elif isinstance(t.threshold, float):
        cut = t.threshold
        meta["threshold"] = {"value": cut, "metric": "fixed"}
    return PostHoc(scored, cut, meta)


def summary_rows(metadata: dict[str, Any]) -> list[tuple[str, Any]]:
    """`--calibrate` and `--threshold` as (name, value) rows for the train summary, `inspect`
    and `report`, from a model's metadata (or `inspect`'s description: the same keys)."""
    rows: list[tuple[str, Any]] = []
    calibration = metadata.get("calibration")
    if calibration:
        rows.append(("temperature", calibration["temperature"]))
        before, after = calibration.get("before", {}), calibration.get("after", {})
        for key, name in (("log_loss", "log loss"), ("ece", "ECE")):
            pair = before.get(key), after.get(key)
            if all(isinstance(v, (int, float)) for v in pair):
                text = "{:.4f} -> {:.4f}".format(*pair)
                rows.append((f"validation {name} (before -> after)", text))
    threshold = metadata.get("threshold")
    if threshold:
        how, score = threshold.get("metric", "fixed"), threshold.get("score")
        if isinstance(score, (int, float)):
            how += f" {score:.4g} on the validation rows"
        rows.append(("decision threshold", f"{threshold['value']:.4g} ({how})"))
    return rows
