"""Permutation importance: the score drop when one feature's rows are shuffled, over
repeats, on the shared executor."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlpcli import data, metrics, parallel
from mlpcli import task as tasks
from mlpcli.errors import DataError, UsageError
from mlpcli.explain.common import (
    BATCH_ROWS,
    LOG,
    ExplainFiles,
    ExplainOptions,
    Explanation,
    Floats,
    Indices,
    feature_units,
    output_names,
    read_data,
)
from mlpcli.nn.network import MLP
from mlpcli.target_encoding import TargetEncoder
from mlpcli.trained import TrainedModel


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


def _metric(model: TrainedModel, name: str | None) -> metrics.Metric:
    """`--metric` (default: the task's), if it applies to the model's task."""
    task = model.task
    metric = tasks.get(task).metric(name)
    if task not in metric.tasks:
        raise UsageError(
            f"--metric '{metric.name}' does not apply to a {task} model; choose one of: "
            f"{', '.join(metrics.for_task(task))}."
        )
    return metric


def _scorer(model: TrainedModel, frame: pd.DataFrame, name: str | None) -> _Scorer:
    metric = _metric(model, name)
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
    check_targets(model, frame.columns)
    frame, n_dropped, scorer, X = _inputs(model, frame, options.metric)
    if n_dropped:
        LOG.warning(f"Dropped {n_dropped} row(s) whose target is missing.")
    repeats = 10 if options.repeats is None else options.repeats
    feats = feature_units(model, options.groups)
    baseline = scorer(model.net.forward(X))
    seeds = parallel.seed_streams(options.seed, len(feats.names))
    scores = _run_parallel(model.net, X, feats.indices, scorer, repeats, seeds, options)
    return explanation(model, feats, scorer, baseline, scores, repeats, options, len(X), n_dropped)


def check_targets(model: TrainedModel, columns: Any) -> None:
    """The table holds the model's target columns: permutation importance scores against them."""
    missing = [t for t in model.encoder.targets if t not in set(columns)]
    if missing:
        raise DataError(
            f"Permutation importance needs the target column(s) {', '.join(map(repr, missing))} "
            "in the data; use --method gradient or integrated-gradients for unlabelled data."
        )


def explanation(
    model: TrainedModel,
    feats: Any,
    scorer: _Scorer,
    baseline: float,
    scores: list[Floats],
    repeats: int,
    options: ExplainOptions,
    n_rows: int,
    n_dropped: int,
) -> Explanation:
    """The result from the unshuffled score and each feature's scores per repeat."""
    sign = 1.0 if scorer.metric.greater_is_better else -1.0
    drops = sign * (baseline - np.vstack(scores))
    if len(drops) and not drops.any():
        _warn_all_zero(scorer.metric.name, n_rows, model.encoder.classification)
    return Explanation(
        method="permutation",
        task=model.task,
        features=feats.names,
        columns=feats.columns,
        importance=drops.mean(axis=1),
        sd=drops.std(axis=1, ddof=1) if repeats > 1 else np.zeros(len(drops)),
        outputs=output_names(model.encoder),
        n_rows=n_rows,
        units=f"decrease in {scorer.metric.name} when shuffled",
        metric=scorer.metric.name,
        greater_is_better=scorer.metric.greater_is_better,
        baseline_score=baseline,
        repeats=repeats,
        seed=options.seed,
        repeat_importances=drops,
        n_dropped=n_dropped,
    )


def _inputs(
    model: TrainedModel, frame: pd.DataFrame, metric: str | None
) -> tuple[pd.DataFrame, int, _Scorer, NDArray[Any]]:
    """The labelled rows, how many were dropped, the scorer on their targets, and X."""
    frame, n_dropped = data.drop_missing_targets(frame, model.encoder.targets)
    return frame, n_dropped, _scorer(model, frame, metric), model.transform(frame)


def _inputs_from_files(files: ExplainFiles, metric: str | None) -> tuple[MLP, Any, _Scorer]:
    """On a dask worker: the network, X and the scorer, from the files themselves."""
    from mlpcli.outputs import sha256_file
    from mlpcli.trained import load_trained

    parallel.check_same_file(files.model, files.model_sha256, sha256_file(files.model))
    model = load_trained(files.model)
    table = read_data(model, files.data, files.sep, files.decimal, files.transpose)
    parallel.check_same_file(files.data, files.data_sha256, table.sha256)
    _, _, scorer, X = _inputs(model, table.frame, metric)
    return model.net, X, scorer


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
    executor = parallel.Executor(options.backend, options.scheduler, n_jobs, options.ship_data)
    with executor:
        workers = executor.n_workers
        if workers == 1 or len(indices) < 2:
            return _score_features(net, X, indices, scorer, repeats, seeds)
        files = options.files
        shipped: Any = (net, X, scorer)
        if files is not None and executor.by_path(files.model, files.data):
            where = dataclasses.replace(
                files, model=os.path.abspath(files.model), data=os.path.abspath(files.data)
            )
            shipped = parallel.file_ref(_inputs_from_files, where, options.metric)
        calls = [
            (shipped, indices[a:b], repeats, seeds[a:b])
            for a, b in parallel.chunk_bounds(len(indices), workers)
        ]
        scatter = [] if isinstance(shipped, parallel.FileRef) else [shipped]
        chunks = executor.map(_score_chunk, calls, scatter)
    return [scores for chunk in chunks for scores in chunk]


def _score_chunk(
    shipped: tuple[MLP, NDArray[Any], _Scorer] | parallel.FileRef,
    indices: list[Indices],
    repeats: int,
    seeds: list[np.random.SeedSequence],
) -> list[Floats]:
    """One task: some features' scores, on the network, X and scorer sent or rebuilt."""
    net, X, scorer = parallel.resolve(shipped)
    return _score_features(net, X, indices, scorer, repeats, seeds)
