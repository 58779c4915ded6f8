"""Small-data honesty: what the network is worth next to models that cannot overfit (issue 14).

Next to the network's score (the task's default metric: accuracy, or R^2 for regression),
`train` and `cv` report two baselines scored on the same rows:

    constant   classification: the training rows' class frequencies for every row (the
               majority class; per target for multilabel); regression: the training mean
    linear     the same options with no hidden layer and no numeric embedding (logistic/
               softmax/linear regression), trained with the same optimizer, loss, epochs and
               early stopping

and the gap between the training and the validation rows (`GAPS`, by task kind):

    classification   train accuracy - validation accuracy              large above 0.15
    regression       validation MSE / train MSE (standardised targets) large above 2

A large gap comes with a one-line hint naming options that regularise. The baselines never
touch the network or its generator: the linear model draws from its own seed stream, so the
trained weights are those of a run without baselines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mlpcli import auto, fitting
from mlpcli import task as tasks
from mlpcli.errors import DivergenceError

if TYPE_CHECKING:
    from mlpcli.config import Settings
    from mlpcli.nn.network import MLP
    from mlpcli.prepare import PreparedData

#: constant_rule -> its name in summaries.
CONSTANT_NAMES = {"majority": "majority-class baseline", "mean": "mean baseline"}
#: Options named by the hint of a large train/validation gap.
REGULARISERS = "--weight-decay 1e-3, --dropout 0.2, fewer --hidden units (e.g. --hidden 16)"


def constant_outputs(kind: str, Y_train: NDArray[Any], n_rows: int) -> NDArray[Any]:
    """Network-shaped outputs that ignore the inputs: the training rows' mean of the encoded
    targets (class frequencies, label prevalences, or the standardised mean ~ 0)."""
    mean = np.asarray(Y_train, dtype=np.float64).mean(axis=0)
    return np.tile(mean, (n_rows, 1))


def score(
    kind: str, Y: NDArray[Any], P: NDArray[Any], threshold: float = tasks.THRESHOLD
) -> float | None:
    """The task's default metric of outputs P against encoded targets Y (decisions at the
    threshold), as `Task.epoch_score` computes it; None where it is undefined (R² of a single
    row), so the model file's JSON holds null, never NaN."""
    spec = tasks.get(kind)
    value = float(spec.metric(None)(spec.decide(Y), spec.decide(P, threshold)))
    return value if np.isfinite(value) else None


@dataclass(frozen=True)
class Gap:
    """How much better the network does on its training rows than on the validation rows."""

    measure: str  # {role}: the rows compared with the training rows
    limit: float
    value: Callable[[Mapping[str, float]], float]  # from the train/validation figures


def _accuracy_gap(figures: Mapping[str, float]) -> float:
    return figures["train_score"] - figures["validation_score"]


def _mse_ratio(figures: Mapping[str, float]) -> float:
    return figures["validation_mse"] / max(figures["train_mse"], 1e-12)


#: Task kind (classification or not) -> its gap.
GAPS: dict[bool, Gap] = {
    True: Gap("train accuracy - {role} accuracy", 0.15, _accuracy_gap),
    False: Gap("{role} MSE / train MSE", 2.0, _mse_ratio),
}


def _mse(Y: NDArray[Any], P: NDArray[Any]) -> float:
    return float(np.mean((np.asarray(Y, np.float64) - np.asarray(P, np.float64)) ** 2))


def linear_settings(settings: Settings) -> Settings:
    """The same run without hidden layers (one activation name serves zero layers) and without
    the recipe's numeric embedding (a periodic embedding is not linear in the inputs, and on
    a wide table it cost as much as the network's own), in this process (`--ensemble-groups`
    spreads the network's groups, not its baseline's); under `--preset auto` (cv's folds) the
    lecture's linear model, not one per candidate."""
    preset = {"preset": "classic", "ensemble": 1} if auto.is_auto(settings) else {}
    return settings.replace(
        hidden="", activation="relu", ensemble_groups=1, embedding="none", **preset
    )


def fit_linear(settings: Settings, prepared: PreparedData) -> tuple[MLP | None, dict[str, Any]]:
    """The zero-hidden-layer network on the same arrays, from its own seed stream; None (and
    the reason) if it diverges."""
    rng = np.random.default_rng(np.random.SeedSequence(settings.train.seed, spawn_key=(14,)))
    started = time.perf_counter()
    try:
        net, result = fitting.fit_model(linear_settings(settings), prepared, rng)
    except DivergenceError as exc:
        return None, {"error": str(exc), "seconds": round(time.perf_counter() - started, 3)}
    seconds = round(time.perf_counter() - started, 3)
    return net, {"epochs_run": result.epochs_run, "seconds": seconds}


def compare(
    settings: Settings,
    prepared: PreparedData,
    net: MLP,
    threshold: float,
    X_eval: NDArray[Any],
    Y_eval: NDArray[Any],
    role: str = "validation",
    outputs: Mapping[str, NDArray[Any]] | None = None,
) -> dict[str, Any]:
    """The network, the constant and the linear baseline on the evaluation rows (`role`:
    validation for train, test for a cv fold), and the train/evaluation gap with its hint;
    `outputs` ("train", `role`) are the network's outputs when the caller has them."""
    kind = prepared.task.task
    spec = tasks.get(kind)
    linear, about = fit_linear(settings, prepared)
    rows = {"train": (prepared.X, prepared.Y), role: (X_eval, Y_eval)}
    record: dict[str, Any] = {
        "metric": spec.default_metric,
        "constant_rule": "majority" if spec.classification else "mean",
        "network": {},
        "constant": {},
        "linear": {**about},
    }
    figures: dict[str, float] = {}
    for split, (X, Y) in rows.items():
        P = outputs[split] if outputs is not None and split in outputs else net.forward(X)
        record["network"][split] = network = score(kind, Y, P, threshold)
        if network is not None:  # accuracy always is; the regression gap reads the MSEs
            figures[f"{split}_score"] = network
        figures[f"{split}_mse"] = _mse(Y, P)
        record["constant"][split] = score(kind, Y, constant_outputs(kind, prepared.Y, len(X)))
        if linear is not None:
            record["linear"][split] = score(kind, Y, linear.forward(X))
    gap = GAPS[spec.classification]
    value = gap.value({k.replace(role, "validation"): v for k, v in figures.items()})
    record["gap"] = {
        "measure": gap.measure.format(role=role),
        "value": value,
        "limit": gap.limit,
        "large": bool(value > gap.limit),
    }
    record["hints"] = hints(record, role)
    return record


def hints(record: Mapping[str, Any], role: str = "validation") -> list[str]:
    """One line per warning sign: a large train/`role` gap; a network no better than the
    constant; a linear model (better than the constant) as good as the network."""
    metric, gap = record["metric"], record["gap"]
    network, linear = record["network"][role], record["linear"].get(role)
    constant = record["constant"][role]
    found = []
    if gap["large"]:
        found.append(
            f"The network fits its training rows far better than the {role} rows "
            f"({gap['measure']} = {gap['value']:.3f} > {gap['limit']:g}): try {REGULARISERS}."
        )
    if network is not None and constant is not None and network <= constant:
        name = CONSTANT_NAMES[record["constant_rule"]]
        found.append(
            f"The network scores {role} {metric} {network:.3f}, no better than the {name} "
            f"({constant:.3f}): the features may not predict the target, or there are too few "
            "rows to tell."
        )
    elif linear is not None and network is not None and linear >= network > constant:
        found.append(
            f"The linear baseline (no hidden layer) scores {role} {metric} {linear:.3f}, the "
            f"network {network:.3f}: on this table a linear model (--hidden '') is as good."
        )
    return found


def summary_rows(record: Mapping[str, Any], role: str = "validation") -> list[tuple[str, Any]]:
    """The baselines (scored on the `role` rows) and the gap as short (name, value) rows
    beside the network's own figures: a summary's first column stays narrow."""
    metric, rule = record["metric"], record["constant_rule"]
    return [
        (f"baseline {rule} {metric}", record["constant"][role]),
        (f"baseline linear {metric}", record["linear"].get(role)),
        (f"train-{role} gap", record["gap"]["value"]),
    ]
