"""Which input columns drive a trained model, reported per column of the raw table.

A numeric column's missing indicator and a categorical column's one-hot block belong to their
column, so every method answers per input column (or per named group of columns):

- permutation:  importance_j = s (score(X) - score(X, column j's rows shuffled)), mean and sd
  over repeats; s = +1 when the metric's greater is better, -1 otherwise, so positive = used.
- gradient:     importance_j = mean_i |d f(x_i) / d raw_ij|, the chain rule running through the
  stored scaling and log1p, so it is per unit of the original feature; a categorical column
  reports mean over its levels of |d f / d level - the block's mean|: switching levels is the
  only move a sample can make, so the gradient shared by all levels is removed.
- integrated-gradients: a_ij = (x_ij - x'_j) int_0^1 d f(x' + t (x_i - x')) / d x_j dt, whose
  sum over j is f(x_i) - f(x') (completeness); importance_j = mean_i |a_ij|.

f is the network output: class probabilities (binary: of the positive class), or regression
targets in their original units. Nothing here prints; warnings and the completeness check go to
the `mlpcli` logger.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import logging
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlpcli import config, data, metrics, parallel, pipeline
from mlpcli import task as tasks
from mlpcli.errors import DataError, UsageError, choose, install_hint
from mlpcli.limits import MAX_GROUPS_BYTES, check_memory, read_bounded, shorten
from mlpcli.nn.network import MLP
from mlpcli.outputs import atomic_path, provenance, sha256_file
from mlpcli.preprocessing import TargetEncoder
from mlpcli.trained import TrainedModel, load_trained

LOG = logging.getLogger("mlpcli")

Floats = NDArray[np.float64]
Indices = NDArray[np.intp]

#: Rows per batched forward pass (several permutation repeats or integration steps share one).
BATCH_ROWS = 65536
#: Completeness errors above this fraction of the largest |f(x) - f(baseline)| get a warning.
COMPLETENESS_WARNING = 0.05


# --------------------------------------------------------------------------- options and result
@dataclass(frozen=True)
class ExplainOptions:
    """What to compute. None means "not given": the method's default applies, and an option
    that the chosen method does not use is an error rather than silently ignored."""

    method: str = "permutation"
    metric: str | None = None
    repeats: int | None = None
    seed: int = 0
    n_jobs: int = 1
    #: Where permutation repeats run: "local" processes, or "dask" with `scheduler`.
    backend: str = "local"
    scheduler: str | None = None
    groups: Mapping[str, Sequence[str]] | None = None
    steps: int | None = None
    rule: str | None = None
    baseline: pd.DataFrame | None = field(default=None, repr=False)


@dataclass
class Explanation:
    """Importances per feature (an input column, or a named group), in the model's column order.

    `per_output` and `effect` have one column per network output (`outputs`); `effect` is the
    signed mean effect (gradient: d f / d raw x; integrated gradients: the mean attribution).
    """

    method: str
    task: str
    features: list[str]
    columns: list[list[str]]
    importance: Floats
    sd: Floats
    outputs: list[str]
    n_rows: int
    units: str
    per_output: Floats | None = None
    effect: Floats | None = None
    metric: str | None = None
    greater_is_better: bool | None = None
    baseline_score: float | None = None
    repeats: int | None = None
    seed: int | None = None
    repeat_importances: Floats | None = None
    n_dropped: int = 0
    completeness: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def rank(self) -> Indices:
        """1 for the most important feature; equal importances share the best of their ranks
        (0, 0, 0 rank 1, 1, 1: no order is invented); undefined (NaN) importances rank last."""
        key = np.where(np.isnan(self.importance), -np.inf, self.importance)
        order = np.lexsort((np.arange(len(key)), -key))
        rank = np.empty(len(key), dtype=np.intp)
        rank[order] = np.arange(1, len(key) + 1)
        # Ties with the previous feature in `order` take its rank.
        for previous, i in itertools.pairwise(order):
            if key[i] == key[previous] and not np.isnan(self.importance[i]):
                rank[i] = rank[previous]
        return rank

    def to_frame(self) -> pd.DataFrame:
        """The output table, most important first: feature, importance, sd, rank, then effect
        and one importance_<output> / effect_<output> pair per output when there are several."""
        table: dict[str, Any] = {
            "feature": self.features,
            "importance": self.importance,
            "sd": self.sd,
            "rank": self.rank,
        }
        several = len(self.outputs) > 1
        if self.effect is not None and not several:
            table["effect"] = self.effect[:, 0]
        if several and self.per_output is not None:
            for k, name in enumerate(self.outputs):
                table[f"importance_{name}"] = self.per_output[:, k]
                if self.effect is not None:
                    table[f"effect_{name}"] = self.effect[:, k]
        frame = pd.DataFrame(table)
        return frame.sort_values("rank", kind="stable").reset_index(drop=True)

    def to_dict(self, command: list[str] | None = None) -> dict[str, Any]:
        """The stable JSON document of `--json` (NaN becomes null)."""
        rows = []
        for i in np.argsort(self.rank, kind="stable"):
            row: dict[str, Any] = {
                "feature": self.features[i],
                "rank": int(self.rank[i]),
                "importance": _num(self.importance[i]),
                "sd": _num(self.sd[i]),
                "columns": self.columns[i],
            }
            if self.per_output is not None:
                row["per_output"] = {
                    name: _num(self.per_output[i, k]) for k, name in enumerate(self.outputs)
                }
            if self.effect is not None:
                row["effect"] = {
                    name: _num(self.effect[i, k]) for k, name in enumerate(self.outputs)
                }
            if self.repeat_importances is not None:
                row["repeats"] = [_num(v) for v in self.repeat_importances[i]]
            rows.append(row)
        return {
            "method": self.method,
            "task": self.task,
            "units": self.units,
            "metric": self.metric,
            "greater_is_better": self.greater_is_better,
            "baseline_score": _num(self.baseline_score),
            "repeats": self.repeats,
            "seed": self.seed,
            "n_rows": self.n_rows,
            "n_dropped_targets": self.n_dropped,
            "outputs": self.outputs,
            "baseline": self.baseline,
            "completeness": self.completeness,
            "features": rows,
            "provenance": provenance(command, self.inputs, self.seed),
        }

    def to_json(self, command: list[str] | None = None) -> str:
        return json.dumps(self.to_dict(command), indent=2, allow_nan=False) + "\n"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------- features and groups
@dataclass
class _Features:
    """The units importance is reported for: names, their input columns, encoded indices."""

    names: list[str]
    columns: list[list[str]]
    indices: list[Indices]


def _features(model: TrainedModel, groups: Mapping[str, Sequence[str]] | None) -> _Features:
    """Input columns, or the named groups followed by every column in no group."""
    slices = model.preprocessor.input_slices()
    if not groups:
        return _Features(list(slices), [[n] for n in slices], list(slices.values()))
    names, columns, indices = [], [], []
    for group, members in groups.items():
        unknown = [c for c in members if c not in slices]
        if unknown:
            raise DataError(
                f"--group-features: group '{group}' names column(s) that are not model inputs: "
                f"{', '.join(repr(c) for c in unknown[:10])}; the inputs are the model's "
                "feature columns (see `mlpcli explain --json`)."
            )
        if group in slices and list(members) != [group]:
            raise DataError(
                f"--group-features: group name '{group}' is also an input column; rename it."
            )
        names.append(group)
        columns.append(list(members))
        indices.append(np.unique(np.concatenate([slices[c] for c in members])))
    grouped = {c for members in groups.values() for c in members}
    for name, idx in slices.items():
        if name not in grouped:
            names.append(name)
            columns.append([name])
            indices.append(idx)
    return _Features(names, columns, indices)


def read_groups(path: str | Path) -> dict[str, list[str]]:
    """Read `--group-features FILE`: group name -> input columns.

    TOML (`.toml`): one key per group, `mapk = ["ERK_N", "pERK_N", "MEK_N"]`.
    CSV or TSV (tab for `.tsv`/`.tab`): a header `group,column`, then one column per line;
    a group's lines need not be adjacent. A column may sit in several groups.
    """
    path = Path(path)
    raw = read_bounded(path, "--group-features", MAX_GROUPS_BYTES, DataError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"--group-features '{path}': not UTF-8 text.") from None
    reader = _GROUP_READERS.get(path.suffix.lower(), _groups_from_table)
    groups = reader(text, path)
    if not groups:
        raise DataError(f"--group-features '{path}': no groups found; see `mlpcli explain -h`.")
    return groups


def _groups_from_toml(text: str, path: Path) -> dict[str, list[str]]:
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        raise DataError(
            f"--group-features '{path}': nested too deeply to be a groups file."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(
            f"--group-features '{path}': not valid TOML ({shorten(exc, 200)})."
        ) from None
    groups: dict[str, list[str]] = {}
    for name, members in doc.items():
        if not (isinstance(members, list) and members and all(isinstance(m, str) for m in members)):
            raise DataError(
                f"--group-features '{path}': group '{name}' must be a non-empty list of column "
                f'names, e.g. {name} = ["colA", "colB"].'
            )
        groups[name] = list(dict.fromkeys(members))
    return groups


def _groups_from_table(text: str, path: Path) -> dict[str, list[str]]:
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=sep) if any(f.strip() for f in r)]
    header = [f.strip().lower() for f in rows[0]] if rows else []
    if header != ["group", "column"]:
        raise DataError(
            f"--group-features '{path}': the first line must be the header 'group{sep}column' "
            f"(got {sep.join(rows[0]) if rows else 'an empty file'!r})."
        )
    groups: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(
                f"--group-features '{path}': row {line} must hold a group and a column name, "
                f"got {sep.join(row)!r}."
            )
        members = groups.setdefault(row[0].strip(), [])
        if row[1].strip() not in members:
            members.append(row[1].strip())
    return groups


_GROUP_READERS: dict[str, Callable[[str, Path], dict[str, list[str]]]] = {
    ".toml": _groups_from_toml,
}


# --------------------------------------------------------------------------- outputs of the network
def _output_names(encoder: TargetEncoder) -> list[str]:
    """One name per network output: class labels (binary: the positive class), target names."""
    names = encoder.labels if encoder.classification else encoder.targets
    return names[len(names) - encoder.n_outputs :]


def _output_scale(encoder: TargetEncoder) -> Floats:
    """Per output, original units per network unit: the target std for regression, else 1."""
    if encoder.classification:
        return np.ones(encoder.n_outputs)
    zero = np.zeros((1, encoder.n_outputs))
    scale: Floats = np.asarray(encoder.decode(zero + 1.0) - encoder.decode(zero), dtype=np.float64)[
        0
    ]
    return scale


def _output_units(encoder: TargetEncoder) -> str:
    return "probability" if encoder.classification else "target units"


# --------------------------------------------------------------------------- permutation
@dataclass
class _Scorer:
    """score(network outputs) on fixed true targets, in the metric's own units."""

    metric: metrics.Metric
    encoder: TargetEncoder
    y_true: NDArray[Any]
    threshold: float = tasks.THRESHOLD  # the model's decision threshold

    def __call__(self, P: NDArray[Any]) -> float:
        spec = tasks.get(self.encoder.task)
        predicted = spec.predictions(self.metric.needs, self.encoder, P, self.threshold)
        return float(self.metric(self.y_true, predicted))


def _scorer(model: TrainedModel, frame: pd.DataFrame, name: str | None) -> _Scorer:
    task = model.task
    metric = tasks.get(task).metric(name)
    if task not in metric.tasks:
        raise UsageError(
            f"--metric '{metric.name}' does not apply to a {task} model; choose one of: "
            f"{', '.join(metrics.for_task(task))}."
        )
    encoded = model.encoder.encode(frame, np.float64)
    y_true = encoded[0] if model.encoder.classification else model.encoder.decode(encoded)
    return _Scorer(metric, model.encoder, y_true, model.threshold)


def _repeat_scores(
    net: MLP,
    X: NDArray[Any],
    cols: Indices,
    scorer: _Scorer,
    repeats: int,
    seed: np.random.SeedSequence,
) -> Floats:
    """Scores with `cols` shuffled together, one row permutation per repeat; several repeats
    are stacked into one forward pass while they fit in BATCH_ROWS rows."""
    rng = np.random.default_rng(seed)
    n = len(X)
    perms = [rng.permutation(n) for _ in range(repeats)]
    scores = np.empty(repeats)
    per_pass = max(1, BATCH_ROWS // max(n, 1))
    for start in range(0, repeats, per_pass):
        chunk = range(start, min(start + per_pass, repeats))
        stacked = np.tile(X, (len(chunk), 1))
        for b, r in enumerate(chunk):
            stacked[b * n : (b + 1) * n, cols] = X[np.ix_(perms[r], cols)]
        P = net.forward(stacked)
        for b, r in enumerate(chunk):
            scores[r] = scorer(P[b * n : (b + 1) * n])
    return scores


def _score_features(
    net: MLP,
    X: NDArray[Any],
    indices: list[Indices],
    scorer: _Scorer,
    repeats: int,
    seeds: list[np.random.SeedSequence],
) -> list[Floats]:
    return [
        _repeat_scores(net, X, cols, scorer, repeats, seed)
        for cols, seed in zip(indices, seeds, strict=True)
    ]


def permutation_importance(
    model: TrainedModel, frame: pd.DataFrame, options: ExplainOptions
) -> Explanation:
    """Drop in the metric when each feature's rows are shuffled (all its encoded columns with
    one permutation). Feature j draws from child j of SeedSequence(seed), so the result does
    not depend on --n-jobs."""
    targets = model.encoder.targets
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise DataError(
            f"Permutation importance needs the target column(s) {', '.join(map(repr, missing))} "
            "in the data; use --method gradient or integrated-gradients for unlabelled data."
        )
    frame, n_dropped = data.drop_missing_targets(frame, targets)
    if n_dropped:
        LOG.warning(f"Dropped {n_dropped} row(s) whose target is missing.")
    repeats = 10 if options.repeats is None else options.repeats
    scorer = _scorer(model, frame, options.metric)
    X = model.transform(frame)
    feats = _features(model, options.groups)
    baseline = scorer(model.net.forward(X))
    seeds = parallel.seed_streams(options.seed, len(feats.names))
    scores = _run_parallel(model.net, X, feats.indices, scorer, repeats, seeds, options)
    sign = 1.0 if scorer.metric.greater_is_better else -1.0
    drops = sign * (baseline - np.vstack(scores))
    if len(drops) and not drops.any():
        _warn_all_zero(scorer.metric.name, len(X), model.encoder.classification)
    return Explanation(
        method="permutation",
        task=model.task,
        features=feats.names,
        columns=feats.columns,
        importance=drops.mean(axis=1),
        sd=drops.std(axis=1, ddof=1) if repeats > 1 else np.zeros(len(drops)),
        outputs=_output_names(model.encoder),
        n_rows=len(X),
        units=f"decrease in {scorer.metric.name} when shuffled",
        metric=scorer.metric.name,
        greater_is_better=scorer.metric.greater_is_better,
        baseline_score=baseline,
        repeats=repeats,
        seed=options.seed,
        repeat_importances=drops,
        n_dropped=n_dropped,
    )


def _warn_all_zero(metric: str, n_rows: int, classification: bool) -> None:
    """Every shuffle left the metric exactly unchanged: the ranks carry no information."""
    advice = (
        " Try --metric log_loss, which sees every change in the predicted probabilities."
        if classification and metric != "log_loss"
        else ""
    )
    LOG.warning(
        f"Permutation importance is exactly 0 for every feature: shuffling no feature changed "
        f"the {metric} on these {n_rows} rows (a metric plateau, or correlated features "
        f"standing in for each other), so all features share rank 1.{advice}"
    )


def _run_parallel(
    net: MLP,
    X: NDArray[Any],
    indices: list[Indices],
    scorer: _Scorer,
    repeats: int,
    seeds: list[np.random.SeedSequence],
    options: ExplainOptions,
) -> list[Floats]:
    """Features split into one contiguous chunk per worker (the network's scratch buffers are
    not thread-safe, and one chunk per worker ships X once per worker); each feature keeps its
    own seed, so the scores do not depend on the backend or the number of workers."""
    n_jobs = -1 if options.n_jobs < 0 else options.n_jobs
    with parallel.Executor(options.backend, options.scheduler, n_jobs) as executor:
        workers = executor.n_workers
        if workers == 1 or len(indices) < 2:
            return _score_features(net, X, indices, scorer, repeats, seeds)
        calls = [
            (net, X, indices[a:b], scorer, repeats, seeds[a:b])
            for a, b in parallel.chunk_bounds(len(indices), workers)
        ]
        chunks = executor.map(_score_features, calls, [net, X, scorer])
    return [scores for chunk in chunks for scores in chunk]


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
    scale = _output_scale(model.encoder)
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
        outputs=_output_names(model.encoder),
        n_rows=n,
        units=(
            f"mean |d {_output_units(model.encoder)} / d feature| per unit of the raw feature "
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
    feats = _features(model, options.groups)
    n, k, m = len(X), net.architecture.n_outputs, X.shape[1]
    scale = _output_scale(model.encoder)
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
    names = _output_names(model.encoder)
    return Explanation(
        method="integrated-gradients",
        task=model.task,
        features=feats.names,
        columns=feats.columns,
        importance=per_row.mean(axis=0),
        sd=per_row.std(axis=0),
        outputs=names,
        n_rows=n,
        units=f"mean |attribution| in {_output_units(model.encoder)}",
        per_output=per_output,
        effect=effect,
        completeness=completeness,
        baseline={
            "description": described,
            "output": {name: _num(f_0[o]) for o, name in enumerate(names)},
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


# --------------------------------------------------------------------------- entry points
#: method name -> function(model, frame, options) -> Explanation.
METHODS: dict[str, Callable[[TrainedModel, pd.DataFrame, ExplainOptions], Explanation]] = {
    "permutation": permutation_importance,
    "gradient": gradient_saliency,
    "integrated-gradients": integrated_gradients,
}

#: option -> the methods that use it (an option given for another method is an error).
_OPTION_METHODS: dict[str, tuple[str, ...]] = {
    "metric": ("permutation",),
    "repeats": ("permutation",),
    "groups": ("permutation", "integrated-gradients"),
    "steps": ("integrated-gradients",),
    "rule": ("integrated-gradients",),
    "baseline": ("integrated-gradients",),
}
_FLAGS = {"groups": "--group-features"}


def check_options(options: ExplainOptions) -> None:
    """Refuse bad values and options that the chosen method would ignore."""
    choose("method", options.method, METHODS)
    for name, methods in _OPTION_METHODS.items():
        if getattr(options, name) is not None and options.method not in methods:
            flag = _FLAGS.get(name, config.flag(name))
            raise UsageError(
                f"{flag} applies to --method {' or '.join(methods)}, not {options.method}."
            )
    if options.repeats is not None and options.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {options.repeats}.")
    if options.steps is not None and options.steps < 2:
        raise UsageError(f"--steps must be at least 2, got {options.steps}.")
    if options.rule is not None:
        choose("integration rule", options.rule, RULES)
    if (options.backend != "local" or options.scheduler) and options.method != "permutation":
        raise UsageError(
            f"--backend and --scheduler apply to --method permutation, not {options.method}."
        )
    if options.n_jobs == 0:
        raise UsageError("--n-jobs must be a positive count, or -1 for every core; got 0.")
    if options.metric is not None:
        metrics.get(options.metric)


def explain(model: TrainedModel, frame: pd.DataFrame, options: ExplainOptions) -> Explanation:
    """Importances of the model's input columns on the rows of a raw table."""
    check_options(options)
    if len(frame) == 0:
        raise DataError("The data has no rows to explain.")
    return METHODS[options.method](model, frame, options)


def read_data(
    model: TrainedModel,
    path: str,
    sep: str | None = None,
    decimal: str | None = None,
    transpose: bool | None = None,
) -> data.Table:
    """Read a table as the model's training table was read (same separator, decimal mark,
    missing-value tokens, layout), unless `sep`, `decimal` or `transpose` override them; a
    table lacking the model's features is an error that says if it looks transposed."""
    from mlpcli import predicting

    settings = predicting.model_settings(model, sep, decimal, transpose)
    table = pipeline.read(path, settings)
    predicting.check_columns(
        model,
        table.frame.columns,
        table.source,
        hint=lambda: predicting.transposed_hint(model, path, settings.data.transpose, settings),
    )
    return table


def explain_files(
    model_path: str,
    data_path: str,
    options: ExplainOptions,
    *,
    groups_path: str | None = None,
    baseline_path: str | None = None,
    sep: str | None = None,
    decimal: str | None = None,
    transpose: bool | None = None,
) -> Explanation:
    """`mlpcli explain` as a function: load the model, read the tables, explain, record inputs."""
    if groups_path is not None:
        options = dataclasses.replace(options, groups=read_groups(groups_path))
    check_options(options)
    model = load_trained(model_path)
    table = read_data(model, data_path, sep, decimal, transpose)
    inputs = {str(model_path): sha256_file(model_path), table.source: table.sha256}
    if groups_path is not None:
        inputs[str(groups_path)] = sha256_file(groups_path)
    if baseline_path is not None:
        baseline = read_data(model, baseline_path, sep, decimal, transpose)
        inputs[baseline.source] = baseline.sha256
        options = dataclasses.replace(options, baseline=baseline.frame)
    warn_if_training_data(model, table)
    result = explain(model, table.frame, options)
    result.inputs = inputs
    return result


def warn_if_training_data(model: TrainedModel, table: data.Table) -> None:
    """The loud `overlap` warning when the explained table holds the model's training rows:
    importances then describe what the model memorised as much as what generalises."""
    from mlpcli import overlap

    ids = model.id_columns
    frame = table.frame
    values = (
        overlap.row_ids([frame[c].tolist() for c in ids])
        if ids and all(c in frame.columns for c in ids)
        else None
    )
    warning = overlap.check(model.metadata, table.source, table.sha256, values).warning("explain")
    if warning:
        LOG.warning(warning)


# --------------------------------------------------------------------------- files
#: table extension -> field separator (anything else is CSV).
_TABLE_SEPARATORS = {".tsv": "\t", ".tab": "\t", ".txt": "\t"}


def write_table(result: Explanation, path: str, option: str = "--out") -> None:
    """CSV, or TSV for .tsv/.tab/.txt, written atomically; `-` writes CSV to stdout."""
    frame = result.to_frame()
    if path == "-":
        import sys

        frame.to_csv(sys.stdout, index=False)
        return
    sep = _TABLE_SEPARATORS.get(Path(path).suffix.lower(), ",")
    with atomic_path(path, option) as tmp:
        frame.to_csv(tmp, sep=sep, index=False)


def check_plot(path: str) -> None:
    """Fail before any work when matplotlib is missing or the format is unknown."""
    canvas = _canvas_class()
    formats = canvas(_figure_class()()).get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise UsageError(
            f"--plot '{path}': unknown image format '{suffix}'; use one of: "
            f"{', '.join(sorted(formats))}."
        )


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError(
            f"--plot needs matplotlib, which is not installed: {install_hint('plot')}."
        ) from None
    return Figure


def _canvas_class() -> Any:
    _figure_class()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg


def plot(result: Explanation, path: str, top: int = 20) -> None:
    """A ranked horizontal bar chart of the top features with ±sd error bars."""
    Figure, Canvas = _figure_class(), _canvas_class()
    frame = result.to_frame().head(top)
    height = 1.2 + 0.28 * len(frame)
    figure = Figure(figsize=(7.0, height))
    Canvas(figure)
    ax = figure.add_subplot()
    positions = np.arange(len(frame))[::-1]
    ax.barh(positions, frame["importance"], xerr=frame["sd"], color="#4c72b0", capsize=2)
    ax.set_yticks(positions, labels=frame["feature"])
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel(result.units)
    ax.set_title(f"mlpcli explain: {result.method}, top {len(frame)}")
    figure.tight_layout()
    suffix = Path(path).suffix.lower().lstrip(".")
    with atomic_path(path, "--plot") as tmp:
        figure.savefig(tmp, format=suffix)
