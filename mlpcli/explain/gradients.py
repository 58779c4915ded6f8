"""Gradient saliency and integrated gradients, through the stored preprocessing, so each
is per unit of the raw column."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlpcli.errors import UsageError, choose
from mlpcli.explain.common import (
    BATCH_ROWS,
    COMPLETENESS_WARNING,
    LOG,
    ExplainOptions,
    Explanation,
    Floats,
    feature_units,
    finite_or_none,
    output_names,
    output_scale,
    output_units,
)
from mlpcli.limits import check_memory
from mlpcli.trained import TrainedModel


# --------------------------------------------------------------------------- gradients
def _unit_vectors(n: int, k: int, o: int, dtype: Any) -> NDArray[Any]:
    V = np.zeros((n, k), dtype=dtype)
    V[:, o] = 1
    return V


def gradient_saliency(
    model: TrainedModel, frame: pd.DataFrame, options: ExplainOptions
) -> Explanation:
    """Mean |d f / d raw x| per input column and output, with the signed mean as the effect.

    Rows where a numeric cell is missing (imputed) do not count for that column. Categorical
    columns average |d f / d level - mean over levels| over their levels, and have no signed
    effect.
    """
    net, pre = model.net, model.preprocessor
    X = model.transform(frame)
    D = pre.encoding_derivatives(frame)
    kinds = pre.input_kinds()
    slices = pre.input_slices()
    names = list(slices)
    # A frequency-encoded column is one value (its level's training share), like a number.
    numeric = [j for j, name in enumerate(names) if kinds[name] != "categorical"]
    value_cols = np.array([slices[names[j]][0] for j in numeric], dtype=np.intp)
    categorical = [j for j, name in enumerate(names) if kinds[name] == "categorical"]
    scale = output_scale(model.encoder)
    n, k = len(X), net.architecture.n_outputs
    per_row = np.zeros((n, len(names)))  # |d f / d x_j| per row, averaged over outputs
    per_output = np.empty((len(names), k))
    effect = np.full((len(names), k), np.nan)
    for o in range(k):
        G = net.input_gradient(X, _unit_vectors(n, k, o, net.dtype)).astype(np.float64)
        G *= scale[o]
        magnitude = np.empty((n, len(names)))
        raw = G[:, value_cols] * D[:, value_cols]  # NaN where the cell was imputed
        magnitude[:, numeric] = np.abs(raw)
        effect[numeric, o] = _nanmean(raw, axis=0)
        for j in categorical:
            # Only differences between levels are moves a sample can make (one level is on),
            # so the block's common gradient is removed before averaging over levels.
            block = G[:, slices[names[j]]]
            magnitude[:, j] = np.abs(block - block.mean(axis=1, keepdims=True)).mean(axis=1)
        per_output[:, o] = _nanmean(magnitude, axis=0)
        per_row += magnitude / k
    return Explanation(
        method="gradient",
        task=model.task,
        features=names,
        columns=[[name] for name in names],
        importance=_nanmean(per_row, axis=0),
        sd=_nanstd(per_row, axis=0),
        outputs=output_names(model.encoder),
        n_rows=n,
        units=(
            f"mean |d {output_units(model.encoder)} / d feature| per unit of the raw feature "
            "(categorical: per 0/1 level, centred and averaged over levels)"
        ),
        per_output=per_output,
        effect=effect,
    )


def _nanmean(a: Floats, axis: int) -> Floats:
    """np.nanmean without the warning for an all-missing column (NaN there)."""
    count = np.sum(~np.isnan(a), axis=axis)
    total = np.nansum(a, axis=axis)
    mean: Floats = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
    return mean


def _nanstd(a: Floats, axis: int) -> Floats:
    mean = _nanmean(a, axis)
    return np.sqrt(_nanmean((a - np.expand_dims(mean, axis)) ** 2, axis))


# --------------------------------------------------------------------------- integrated gradients
def _gauss_legendre(steps: int) -> tuple[Floats, Floats]:
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1.0) / 2.0, weights / 2.0


def _trapezoid(steps: int) -> tuple[Floats, Floats]:
    nodes = np.linspace(0.0, 1.0, steps)
    weights = np.full(steps, 1.0 / (steps - 1))
    weights[[0, -1]] /= 2.0
    return nodes, weights


#: Quadrature of t in [0, 1]: steps -> (nodes, weights summing to 1). Gauss-Legendre is exact
#: for polynomials of degree 2 steps - 1, so smooth networks need few steps; piecewise-linear
#: (relu) networks have kinks on the path that either rule resolves only as O(1 / steps).
RULES: dict[str, Callable[[int], tuple[Floats, Floats]]] = {
    "gauss-legendre": _gauss_legendre,
    "trapezoid": _trapezoid,
}


def baseline_row(model: TrainedModel, frame: pd.DataFrame | None) -> tuple[Floats, str]:
    """The encoded integration start and what it is: the training medians (or scaling centers)
    by default, or the one row of a `--baseline` table, preprocessed like the data."""
    pre = model.preprocessor
    if frame is None:
        what = "training medians" if pre.impute == "median" else f"{pre.scale} scaling centers"
        return pre.reference_row(), f"{what}; categorical columns at 1/k per level"
    if len(frame) != 1:
        raise UsageError(
            f"--baseline must hold exactly one row (the reference sample); it has {len(frame)}."
        )
    return model.transform(frame)[0].astype(np.float64), "the row of --baseline"


def integrated_gradients(
    model: TrainedModel, frame: pd.DataFrame, options: ExplainOptions
) -> Explanation:
    """Attributions summed over each feature's encoded columns; importance = mean |a_ij|.

    All integration steps of a block of rows go through the network as one batch.
    """
    net = model.net
    steps = 64 if options.steps is None else options.steps
    rule = options.rule or "gauss-legendre"
    width = max(net.architecture.n_inputs, *net.architecture.hidden_layer_sizes, 1)
    # A batch of at least `steps` path points (path, gradients, activations), and for
    # Gauss-Legendre numpy's dense (steps x steps) companion matrix.
    check_memory(
        8.0 * (4 * steps * width + (steps * steps if rule == "gauss-legendre" else 0)),
        f"--steps {steps:,} ({rule})",
        "a few hundred steps are plenty (the completeness check says when more are needed).",
    )
    nodes, weights = choose("integration rule", rule, RULES)(steps)
    x0, described = baseline_row(model, options.baseline)
    X = model.transform(frame).astype(np.float64)
    feats = feature_units(model, options.groups)
    n, k, m = len(X), net.architecture.n_outputs, X.shape[1]
    scale = output_scale(model.encoder)
    # One (n, m) attribution matrix at a time: per output, summed over each feature's columns.
    member = np.zeros((m, len(feats.names)))
    for j, idx in enumerate(feats.indices):
        member[idx, j] = 1.0
    per_row = np.zeros((n, len(feats.names)))  # |a_ij| averaged over outputs
    per_output = np.empty((len(feats.names), k))
    effect = np.empty((len(feats.names), k))
    totals = np.empty((n, k))
    rows = max(1, BATCH_ROWS // steps)
    for o in range(k):
        attribution = np.empty((n, m))
        for start in range(0, n, rows):
            delta = X[start : start + rows] - x0
            path = (x0 + nodes[:, None, None] * delta[None]).reshape(-1, m)
            V = _unit_vectors(len(path), k, o, net.dtype)
            G = net.input_gradient(path, V).astype(np.float64).reshape(steps, len(delta), m)
            attribution[start : start + len(delta)] = delta * np.tensordot(weights, G, 1)
        attribution *= scale[o]
        totals[:, o] = attribution.sum(axis=1)
        a = attribution @ member
        per_output[:, o] = np.abs(a).mean(axis=0)
        effect[:, o] = a.mean(axis=0)
        per_row += np.abs(a) / k
    f_x = net.forward(X).astype(np.float64) * scale
    f_0 = net.forward(x0[None, :]).astype(np.float64)[0] * scale
    completeness = _completeness(totals, f_x - f_0, steps, rule)
    names = output_names(model.encoder)
    return Explanation(
        method="integrated-gradients",
        task=model.task,
        features=feats.names,
        columns=feats.columns,
        importance=per_row.mean(axis=0),
        sd=per_row.std(axis=0),
        outputs=names,
        n_rows=n,
        units=f"mean |attribution| in {output_units(model.encoder)}",
        per_output=per_output,
        effect=effect,
        completeness=completeness,
        baseline={
            "description": described,
            "output": {name: finite_or_none(f_0[o]) for o, name in enumerate(names)},
        },
    )


def _completeness(total: Floats, delta: Floats, steps: int, rule: str) -> dict[str, Any]:
    """How far the attributions of each row and output sum from f(x) - f(baseline)."""
    error = float(np.max(np.abs(total - delta))) if total.size else 0.0
    largest = float(np.max(np.abs(delta))) if delta.size else 0.0
    message = (
        f"Integrated gradients completeness: max |sum of attributions - (f(x) - f(baseline))| "
        f"= {error:.3g} (largest |f(x) - f(baseline)| {largest:.3g}; {steps} {rule} steps)."
    )
    if error > COMPLETENESS_WARNING * max(largest, 1e-12):
        LOG.warning(message + " Raise --steps for a tighter integral.")
    else:
        LOG.info(message)
    return {"max_abs_error": error, "max_abs_difference": largest, "steps": steps, "rule": rule}
