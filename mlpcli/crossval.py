"""Cross-validation: stratified or grouped K-fold, repeated, run through `parallel.Executor`.

The parent process reads the table once, assigns folds, and encodes every fold (preprocessing
and target scaling fitted on that fold's training rows only, its early-stopping validation rows
split off the training rows too). Workers get finished arrays and only train and score
(`run_fold`), so they need neither the file nor pandas work, and return small results.

Reproducibility: the folds of repeat r come from `SeedSequence(seed, spawn_key=(0, r))`, the
inner split and the training of fold f of repeat r from `spawn_key=(1, r, f)`, and every task
runs with a fixed number of BLAS threads (`--threads`, else 1). So the same seed gives bitwise
the same results whatever `--n-jobs` or backend runs the tasks.

`tuning.py` runs its candidates through the same pieces.

About 610 lines on purpose: folds, their encoding, one fold's task, scoring and the result
table are the steps of one procedure and share its data classes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlpcli import (
    baselines,
    calibration,
    fitting,
    metrics,
    outofcore,
    parallel,
    pipeline,
    prepare,
    sampling,
    splitting,
)
from mlpcli import task as tasks
from mlpcli.config import Settings
from mlpcli.errors import DataError, DivergenceError, UsageError
from mlpcli.outputs import atomic_path, provenance, write_text
from mlpcli.parallel import Executor
from mlpcli.target_encoding import TargetEncoder

LOG = logging.getLogger("mlpcli")

Index = NDArray[np.intp]

#: First spawn-key element of each independent random stream derived from `--seed`.
FOLDS_STREAM, TASK_STREAM, SEARCH_STREAM = 0, 1, 2

#: Report entries that are counts, settings or text rather than metrics.
NOT_METRICS = frozenset(
    {"task", "n_samples", "threshold", "support", "confusion_matrix", "notes", "brier_definition"}
)


# --------------------------------------------------------------------------- folds
@dataclass(frozen=True)
class FoldPlan:
    """Rows (positions in the loaded table) that train and that are held out in one fold."""

    repeat: int
    fold: int
    train_rows: Index
    test_rows: Index


@dataclass
class Strata:
    """What splits respect: class codes (classification) and group codes (`--group`)."""

    y: NDArray[np.intp] | None
    groups: NDArray[np.intp] | None
    labels: list[str] | None

    @classmethod
    def of(cls, loaded: prepare.LoadedTable, settings: Settings) -> Strata:
        d = settings.data
        return cls(
            loaded.class_codes(), loaded.group_codes(d.group, d.group_pattern), loaded.task.labels
        )

    def take(self, rows: Index) -> tuple[NDArray[np.intp] | None, NDArray[np.intp] | None]:
        """Class and group codes of some rows (a fold's training rows)."""
        return (
            None if self.y is None else self.y[rows],
            None if self.groups is None else self.groups[rows],
        )


def plan_folds(n: int, strata: Strata, folds: int, repeats: int, seed: int) -> list[FoldPlan]:
    """K folds per repeat, each repeat shuffled by its own stream of `seed`."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UsageError(f"--repeats must be a whole number of at least 1, got {repeats!r}.")
    return [
        FoldPlan(r, f, train, test)
        for r in range(repeats)
        for f, (train, test) in enumerate(
            splitting.kfold(
                n,
                folds,
                parallel.stream(seed, FOLDS_STREAM, r),
                y=strata.y,
                groups=strata.groups,
                labels=strata.labels,
            )
        )
    ]


@dataclass
class EncodedFold:
    """One fold's arrays as a worker needs them. `prepared` holds the training rows (and the
    early-stopping validation rows); the held-out rows are encoded with the same fitted
    preprocessing. `rng_state` continues the fold's stream for training."""

    repeat: int
    fold: int
    prepared: prepare.PreparedData
    X_test: np.ndarray
    y_index_test: np.ndarray | None
    Y_test: np.ndarray
    test_rows: Index
    rng_state: dict[str, Any] = field(repr=False)

    def generator(self) -> np.random.Generator:
        """A fresh generator at the stored state: the fold may be run by several candidates,
        and a shared object must not be advanced by any of them."""
        bit_generator = getattr(np.random, self.rng_state["bit_generator"])()
        bit_generator.state = self.rng_state
        return np.random.Generator(bit_generator)


def check_cv_settings(settings: Settings) -> None:
    if settings.data.valid_file is not None:
        raise UsageError(
            "--valid-file does not apply to cross-validation: each fold's early-stopping rows "
            "come from its training folds (--valid-fraction, or 0 for none)."
        )


def encode_fold(
    loaded: prepare.LoadedTable, settings: Settings, strata: Strata, plan: FoldPlan
) -> EncodedFold:
    """Fit preprocessing on the fold's training rows (less its early-stopping rows, split off
    with the fold's own stream), then encode the training, validation and held-out rows."""
    rng = parallel.stream(settings.train.seed, TASK_STREAM, plan.repeat, plan.fold)
    frame, d = loaded.frame, settings.data
    train_rows, valid_frame = plan.train_rows, None
    if d.valid_fraction > 0:
        y, groups = strata.take(plan.train_rows)
        inner_train, inner_valid = splitting.train_valid_split(
            len(train_rows), d.valid_fraction, rng, y=y, groups=groups, labels=strata.labels
        )
        train_rows = plan.train_rows[inner_train]
        valid_frame = frame.iloc[plan.train_rows[inner_valid]]
    prepared = prepare.encode_split(loaded, settings, frame.iloc[train_rows], valid_frame)
    test_frame = frame.iloc[plan.test_rows]
    X_test = prepared.preprocessor.transform(test_frame, prepared.X.dtype)
    y_index_test, Y_test = _encode_targets(prepared.target_encoder, test_frame, prepared.X.dtype)
    return EncodedFold(
        plan.repeat,
        plan.fold,
        prepared,
        X_test,
        y_index_test,
        Y_test,
        plan.test_rows,
        dict(rng.bit_generator.state),
    )


def _encode_targets(
    encoder: TargetEncoder, frame: pd.DataFrame, dtype: np.dtype
) -> tuple[np.ndarray | None, np.ndarray]:
    encoded = encoder.encode(frame, dtype)
    return encoded if encoder.classification else (None, encoded)


def encode_folds(
    loaded: prepare.LoadedTable,
    settings: Settings,
    folds: int,
    repeats: int,
    replay: parallel.LogReplay,
) -> list[EncodedFold]:
    check_cv_settings(settings)
    strata = Strata.of(loaded, settings)
    plans = plan_folds(len(loaded.frame), strata, folds, repeats, settings.train.seed)
    with parallel.collect_log() as records:
        encoded = [encode_fold(loaded, settings, strata, plan) for plan in plans]
    replay(records)
    return encoded


def validation_fold(
    path: str,
    settings: Settings,
    replay: parallel.LogReplay,
    prepare_data: Callable[..., prepare.PreparedData] = prepare.prepare_data,
) -> EncodedFold:
    """The train/validation split of `mlpcli train` as a single fold scored on its validation
    rows: the same rows, preprocessing and generator state as `train` with this seed (out of
    core with `prepare_data=outofcore.prepare_data`)."""
    rng = np.random.default_rng(settings.train.seed)
    with parallel.collect_log() as records:
        prepared = prepare_data(path, settings, rng)
    replay(records)
    if prepared.X_val is None or prepared.Y_val is None:
        raise UsageError(
            "Scoring on the validation split needs validation rows: set --valid-fraction above "
            "0, give a --valid-file, or cross-validate with --cv K."
        )
    rows = np.flatnonzero(prepared.split["set"].to_numpy() == "valid")
    return EncodedFold(
        0,
        0,
        prepared,
        prepared.X_val,
        prepared.y_index_val,
        prepared.Y_val,
        rows.astype(np.intp),
        dict(rng.bit_generator.state),
    )


# --------------------------------------------------------------------------- folds by path
def fold_refs(
    path: str, sha256: str, settings: Settings, folds: int | None, repeats: int, n: int
) -> list[parallel.FileRef]:
    """What a worker needs to rebuild each of the `n` folds (of `encode_folds`, or with
    `folds` None `validation_fold`) from the file itself."""
    where = os.path.abspath(path)
    s = parallel.worker_settings(settings)
    build = fold_from_file
    return [parallel.file_ref(build, where, sha256, s, folds, repeats, i) for i in range(n)]


def fold_from_file(
    path: str, sha256: str, settings: Settings, folds: int | None, repeats: int, index: int
) -> EncodedFold:
    """On a worker: fold `index`, encoded exactly as this process encoded it."""
    if folds is None:
        fold = validation_fold(path, settings, parallel.LogReplay())
        parallel.check_same_file(path, sha256, next(iter(fold.prepared.inputs.values())))
        return fold
    loaded = parallel.resolve(parallel.file_ref(_table_from_file, path, sha256, settings))
    strata = Strata.of(loaded, settings)
    plans = plan_folds(len(loaded.frame), strata, folds, repeats, settings.train.seed)
    return encode_fold(loaded, settings, strata, plans[index])


def _table_from_file(path: str, sha256: str, settings: Settings) -> prepare.LoadedTable:
    loaded = prepare.load_table(path, settings)
    parallel.check_same_file(path, sha256, loaded.table.sha256)
    return loaded


# --------------------------------------------------------------------------- out of core
def fold_roles(scan: outofcore.Scan, settings: Settings, folds: int, repeat: int, fold: int) -> Any:
    """Each row's role in fold `fold` of repeat `repeat`, from hashes of its key (its --group,
    ID or row number; `sampling.row_hash_unit`): held out (TEST) when floor(folds u) == fold
    for u drawn from stream (FOLDS_STREAM, repeat), so every row is held out exactly once per
    repeat and a group stays whole; of the others, VALID when the hash of stream (TASK_STREAM,
    repeat, fold) is below --valid-fraction. Neither is stratified."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise UsageError(f"--folds must be an integer of at least 2, got {folds!r}.")
    seed, fraction = settings.train.seed, settings.data.valid_fraction

    def rule(keys: Any) -> np.ndarray:
        unit = sampling.row_hash_unit(keys, seed, FOLDS_STREAM, repeat)
        held = np.minimum((unit * folds).astype(np.int64), folds - 1) == fold
        inner = sampling.row_hash_unit(keys, seed, TASK_STREAM, repeat, fold) < fraction
        return np.where(held, outofcore.TEST, np.where(inner, outofcore.VALID, outofcore.TRAIN))

    roles = scan.roles(rule)
    for role, what in ((outofcore.TEST, "held-out"), (outofcore.TRAIN, "training")):
        if not (roles == role).any():
            raise DataError(
                f"'{scan.path}': repeat {repeat + 1}, fold {fold + 1} has no {what} rows "
                f"({scan.n_present} rows with a target); lower --folds."
            )
    return roles


def fold_out_of_core(
    path: str, sha256: str, settings: Settings, folds: int | None, repeats: int, index: int
) -> EncodedFold:
    """Fold `index` (of `fold_roles`; with `folds` None the validation split of `train
    --out-of-core`) encoded from the table cache into row files beside it, as a task builds
    it: only its own rows, never the table, in memory."""
    if folds is None:
        split = validation_fold(path, settings, parallel.LogReplay(), outofcore.prepare_data)
        parallel.check_same_file(path, sha256, next(iter(split.prepared.inputs.values())))
        return split
    scan = outofcore.scan_table(path, settings)
    parallel.check_same_file(path, sha256, scan.entry.sha256)
    repeat, fold = divmod(index, folds)
    roles = fold_roles(scan, settings, folds, repeat, fold)
    sides = (outofcore.TRAIN, outofcore.VALID, outofcore.TEST)
    encoded = outofcore.encode(scan, settings, roles, sides)
    prepared = outofcore.prepared_data(scan, settings, roles, encoded)
    test = outofcore.TEST
    rows = np.flatnonzero(roles[roles >= 0] == test).astype(np.intp)  # as in the loaded table
    rng = parallel.stream(settings.train.seed, TASK_STREAM, repeat, fold)
    state = dict(rng.bit_generator.state)
    outofcore.return_free_heap()
    X_test: Any = encoded.X[test]
    Y_test: Any = encoded.Y[test]  # not None: fold_roles checked the fold holds rows out
    return EncodedFold(repeat, fold, prepared, X_test, encoded.y_index[test], Y_test, rows, state)


def out_of_core_refs(
    path: str, sha256: str, settings: Settings, folds: int | None, repeats: int
) -> list[parallel.FileRef]:
    """Out of core, every fold is built by the task that trains it (on any backend), from the
    cache entry, and dropped with its row files when the task ends (never kept for later)."""
    where = os.path.abspath(path)
    s = parallel.worker_settings(settings)
    n = 1 if folds is None else folds * repeats
    return [
        dataclasses.replace(
            parallel.file_ref(fold_out_of_core, where, sha256, s, folds, repeats, i), keep=False
        )
        for i in range(n)
    ]


def out_of_core_executor(executor: Executor, path: str, settings: Settings) -> None:
    """Out of core, dask workers must read the table (and its cache) themselves."""
    if executor.name != "local" and not executor.by_path(path, *parallel.side_files(settings)):
        raise UsageError(
            "--out-of-core on with --backend dask needs workers that see DATA and the table "
            "cache on a shared filesystem (not --ship-data): the folds are not sent."
        )


# --------------------------------------------------------------------------- one task
@dataclass
class FoldResult:
    """What a worker sends back: small values, and the held-out outputs when asked."""

    repeat: int
    fold: int
    n_train: int
    n_valid: int
    n_test: int
    seconds: float
    epochs_run: int = 0
    best_epoch: int = 0
    stop_reason: str = ""
    report: dict[str, Any] | None = None
    score: float | None = None
    outputs: np.ndarray | None = None
    baselines: dict[str, Any] | None = None  # `baselines.compare` on the held-out rows
    messages: list[tuple[int, str]] = field(default_factory=list)
    error: str | None = None


def run_fold(
    settings: Settings,
    task_data: EncodedFold | parallel.FileRef,
    metric: str | None = None,
    report: bool = True,
    keep_outputs: bool = False,
    compare: bool = False,
) -> FoldResult:
    """Train on a fold (or on the fold a worker rebuilds from the file) and score the held-out
    rows: the full evaluation report and/or one metric, and with `compare` the baselines.
    Divergence is returned as `error`, not raised, so a search can go on."""
    fold: EncodedFold = parallel.resolve(task_data)
    prepared = fold.prepared
    result = FoldResult(
        fold.repeat,
        fold.fold,
        n_train=len(prepared.X),
        n_valid=0 if prepared.X_val is None else len(prepared.X_val),
        n_test=len(fold.X_test),
        seconds=0.0,
    )
    started = time.perf_counter()
    with (
        parallel.collect_log() as result.messages,
        fitting.blas_threads(parallel.task_threads(settings)),
    ):
        try:
            net, fit = fitting.fit_model(settings, prepared, fold.generator())
        except DivergenceError as exc:
            result.error = str(exc)
            result.seconds = time.perf_counter() - started
            return result
        encoder = prepared.target_encoder
        # the fold's model as train would save it: --calibrate / --threshold on its validation
        posthoc = calibration.fit_posthoc(
            settings, prepared.task.task, net, prepared.X_val, prepared.y_index_val
        )
        net, cut = posthoc.net, posthoc.threshold
        P = outofcore.forward(net, fold.X_test)
        if report:
            result.report = pipeline.evaluation_report(
                encoder, net, fold.X_test, fold.y_index_test, fold.Y_test, cut
            )
        if metric is not None:
            result.score = metric_score(metric, encoder, fold.y_index_test, fold.Y_test, P, cut)
        if compare and not outofcore.on_disk(fold.X_test):  # the baselines read X whole
            result.baselines = baselines.compare(
                settings, prepared, net, cut, fold.X_test, fold.Y_test, role="test"
            )
    result.seconds = time.perf_counter() - started
    result.epochs_run, result.best_epoch = fit.epochs_run, fit.best_epoch
    result.stop_reason = fit.stop_reason
    result.outputs = P if keep_outputs else None
    return result


# --------------------------------------------------------------------------- scoring
def check_metric(name: str | None, task: str) -> metrics.Metric:
    """The `--metric` (default: the task's default metric), if it applies to the task."""
    metric = tasks.get(task).metric(name)
    if task not in metric.tasks:
        raise UsageError(
            f"--metric {metric.name} does not apply to a {task} task; choose one of: "
            f"{', '.join(metrics.for_task(task))}."
        )
    return metric


def metric_score(
    name: str,
    encoder: TargetEncoder,
    y_index: Any,
    Y: np.ndarray,
    P: np.ndarray,
    threshold: float = tasks.THRESHOLD,
) -> float | None:
    """One metric of outputs `P` against encoded targets, in original units for regression;
    None where it is undefined on these rows (roc_auc of a fold with one class)."""
    metric = metrics.get(name)
    spec = tasks.get(encoder.task)
    y_true = spec.truth(encoder, y_index, Y)
    y_pred = spec.predictions(metric.needs, encoder, P, threshold)
    try:
        value = float(metric(y_true, y_pred))
    except metrics.UndefinedMetricError:
        return None
    return value if math.isfinite(value) else None


def flatten_report(report: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    """The metrics of an evaluation report as flat `name -> value` (`macro_avg.f1`,
    `per_class.basal.recall`); counts and texts are left out."""
    out: dict[str, float | None] = {}
    for key, value in report.items():
        if key in NOT_METRICS:
            continue
        if isinstance(value, dict):
            out.update(flatten_report(value, f"{prefix}{key}."))
        elif value is None or (isinstance(value, float) and not isinstance(value, bool)):
            out[prefix + key] = value
    return out


def nest_summaries(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`summarise` of every metric of the reports, nested as in one report: the same leaves
    as `flatten_report`, without joining names (a label may hold a dot)."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for r in reports for k in r if k not in NOT_METRICS):
        values = [r.get(key) for r in reports]
        if any(isinstance(v, dict) for v in values):
            inner = nest_summaries([v if isinstance(v, dict) else {} for v in values])
            if inner:
                out[key] = inner
        elif all(v is None or (isinstance(v, float) and not isinstance(v, bool)) for v in values):
            out[key] = summarise(values)
    return out


def summarise(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample sd (ddof=1) over the folds where the value is defined."""
    defined = np.array([v for v in values if v is not None], dtype=np.float64)
    return {
        "mean": float(defined.mean()) if len(defined) else None,
        "sd": float(defined.std(ddof=1)) if len(defined) > 1 else None,
        "n": len(defined),
        "values": list(values),
    }


# --------------------------------------------------------------------------- cv
@dataclass(frozen=True)
class Progress:
    """One finished task, for a progress display."""

    done: int
    total: int
    what: str
    metric: str | None = None
    value: float | None = None


@dataclass
class CVResult:
    """Per-fold reports and their summary; `predictions` holds the out-of-fold outputs."""

    settings: Settings
    task: str
    folds: int
    repeats: int
    n_samples: int
    stratified: bool
    grouped: bool
    results: list[FoldResult]
    inputs: dict[str, str]
    predictions: pd.DataFrame | None = None

    def summary(self) -> dict[str, dict[str, Any]]:
        """Every metric of the evaluation report: mean, sd, n and the per-fold values."""
        flat = [flatten_report(r.report or {}) for r in self.results]
        names = list(dict.fromkeys(name for f in flat for name in f))
        return {name: summarise([f.get(name) for f in flat]) for name in names}

    def nested_summary(self) -> dict[str, Any]:
        """`summary()` shaped like one evaluation report (`macro_avg: {f1: ...}`, `per_class:
        {basal: {recall: ...}}`), as `evaluate --json` nests its metrics."""
        return nest_summaries([r.report or {} for r in self.results])

    def baselines(self) -> dict[str, Any] | None:
        """The network and the baselines on the held-out folds (mean, sd, per-fold values),
        the mean train/held-out gap and the hints it calls for; None with --no-baselines."""
        records = [r.baselines for r in self.results if r.baselines is not None]
        if not records:
            return None
        first = records[0]
        out: dict[str, Any] = {k: first[k] for k in ("metric", "constant_rule")}
        for model in ("network", "constant", "linear"):
            out[model] = summarise([r[model].get("test") for r in records])
        gap = dict(first["gap"])
        gap["value"] = float(np.mean([r["gap"]["value"] for r in records]))
        gap["large"] = bool(gap["value"] > gap["limit"])
        out["gap"] = gap
        means = {m: {"test": out[m]["mean"]} for m in ("network", "constant", "linear")}
        out["hints"] = baselines.hints({**out, **means}, "test")
        return out

    def to_dict(self, command: list[str] | None = None) -> dict[str, Any]:
        return {
            "task": self.task,
            "folds": self.folds,
            "repeats": self.repeats,
            "n_samples": self.n_samples,
            "stratified": self.stratified,
            "grouped": self.grouped,
            "metrics": self.nested_summary(),
            "baselines": self.baselines(),
            "per_fold": [
                {
                    "repeat": r.repeat + 1,
                    "fold": r.fold + 1,
                    "n_train": r.n_train,
                    "n_valid": r.n_valid,
                    "n_test": r.n_test,
                    "epochs_run": r.epochs_run,
                    "best_epoch": r.best_epoch,
                    "stop_reason": r.stop_reason,
                    "seconds": round(r.seconds, 3),
                    "metrics": r.report,
                }
                for r in self.results
            ],
            "settings": self.settings.to_dict(),
            "provenance": provenance(command, self.inputs, self.settings.train.seed),
        }


def cross_validate(
    path: str,
    settings: Settings,
    folds: int = 5,
    repeats: int = 1,
    *,
    n_jobs: int = 1,
    backend: str = "local",
    scheduler: str | None = None,
    ship_data: bool = False,
    predictions: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    out_of_core: str = "off",
) -> CVResult:
    """K-fold cross-validation of one configuration, repeated with different fold draws.

    Folds are stratified by class (classification) and keep `--group` groups whole. With
    `predictions`, the result carries each sample's out-of-fold prediction per repeat. On a
    dask cluster that shares the file, workers rebuild their folds from it (`ship_data`:
    scatter the folds instead). Out of core (`out_of_core`: auto|on|off, `outofcore.wanted`)
    each task builds its fold from the table cache (`fold_roles`: by row hash, not stratified).
    """
    executor = Executor(backend, scheduler, n_jobs, ship_data)
    check_cv_settings(settings)
    ooc = outofcore.wanted(path, out_of_core, settings.data.sep, "cross-validated")
    if ooc and predictions:
        raise UsageError(
            "--oof-out needs the table in memory; leave it out or pass --out-of-core off."
        )
    with executor:
        replay = parallel.LogReplay()
        encoded: list[EncodedFold] = []
        shipped: list[Any]
        if ooc:
            scan = outofcore.scan_table(path, settings)
            task, n_samples, sha = scan.task.task, scan.n_present, scan.entry.sha256
            source = path
            out_of_core_executor(executor, path, settings)
            shipped = out_of_core_refs(path, sha, settings, folds, repeats)
        else:
            loaded = prepare.load_table(path, settings)
            task, n_samples, sha = loaded.task.task, len(loaded.frame), loaded.table.sha256
            source = loaded.table.source
            encoded = encode_folds(loaded, settings, folds, repeats, replay)
            shipped = list(encoded)
            if executor.by_path(path, *parallel.side_files(settings)):
                shipped = fold_refs(path, sha, settings, folds, repeats, len(encoded))
        headline = tasks.get(task).default_metric
        count = itertools.count(1)

        def on_done(i: int, result: FoldResult) -> None:
            replay(result.messages)
            if on_progress is not None:
                what = f"repeat {result.repeat + 1} fold {result.fold + 1}"
                on_progress(Progress(next(count), len(shipped), what, headline, result.score))

        compare = settings.train.baselines
        calls = [(settings, fold, headline, True, predictions, compare) for fold in shipped]
        if on_progress is not None:
            on_progress(Progress(0, len(calls), "start", headline))
        scatter = [fold for fold in shipped if isinstance(fold, EncodedFold)]
        results: list[FoldResult] = executor.map(run_fold, calls, scatter, on_done)
    for result in results:
        if result.error is not None:
            raise DivergenceError(
                f"Repeat {result.repeat + 1}, fold {result.fold + 1}: {result.error}"
            )
    cv = CVResult(
        settings,
        task,
        folds,
        repeats,
        n_samples,
        stratified=tasks.get(task).stratified and not ooc,
        grouped=settings.data.group is not None,
        results=results,
        inputs={source: sha},
    )
    if predictions:
        cv.predictions = out_of_fold(loaded, encoded, results)
    return cv


# --------------------------------------------------------------------------- out-of-fold table
def _single(names: list[str], prefix: str) -> list[str]:
    return [prefix] if len(names) == 1 else [f"{prefix}_{n}" for n in names]


def out_of_fold(
    loaded: prepare.LoadedTable, encoded: list[EncodedFold], results: list[FoldResult]
) -> pd.DataFrame:
    """One row per sample and repeat: ID (or 1-based row), repeat, fold, the observed value,
    the prediction in original labels or units, and class probabilities."""
    frame, selection = loaded.frame, loaded.selection
    pieces = []
    for fold, result in zip(encoded, results, strict=True):
        if result.outputs is None:
            continue
        rows, P = fold.test_rows, result.outputs
        encoder = fold.prepared.target_encoder
        ids = selection.ids
        piece = (
            frame.iloc[rows][list(ids)].reset_index(drop=True)
            if ids
            else pd.DataFrame({"row": rows + 1})
        )
        piece["repeat"] = fold.repeat + 1
        piece["fold"] = fold.fold + 1
        targets = list(selection.targets)
        observed = (
            encoder.decode(fold.Y_test)
            if encoder.classification
            else frame.iloc[rows][targets].to_numpy()
        )
        predicted = encoder.decode(P)
        for j, name in enumerate(_single(targets, "true")):
            piece[name] = observed if observed.ndim == 1 else observed[:, j]
        for j, name in enumerate(_single(targets, "prediction")):
            piece[name] = predicted if predicted.ndim == 1 else predicted[:, j]
        for name, values in tasks.get(encoder.task).proba_columns(encoder.labels, P).items():
            piece[name] = values
        piece["_order"] = rows
        pieces.append(piece)
    table = pd.concat(pieces, ignore_index=True)
    return table.sort_values(["repeat", "_order"], kind="stable").drop(columns="_order")


def write_outputs(
    result: CVResult,
    out: str | None = None,
    oof_out: str | None = None,
    command: list[str] | None = None,
) -> list[str]:
    """The results as JSON (`--out`) and the out-of-fold predictions as CSV (`--oof-out`),
    each written atomically; returns the paths written."""
    written = []
    if out is not None:
        doc = json.dumps(result.to_dict(command), indent=2, allow_nan=False)
        write_text(out, doc + "\n", "--out")
        written.append(out)
    if oof_out is not None and result.predictions is not None:
        with atomic_path(oof_out, "--oof-out") as tmp:
            result.predictions.to_csv(tmp, index=False)
        written.append(oof_out)
    return written
