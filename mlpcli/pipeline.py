"""The jobs behind the commands, as library functions: prepare data, train, save.

`train`, `cv` and `tune` share `prepare_data` and `fit_model`; the CLI only parses options,
calls these and renders what they return. Nothing here prints: decisions and warnings go to the
`mlpcli` logger, progress to the caller's callback.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpcli import (
    __version__,
    baselines,
    calibration,
    data,
    modelfile,
    optimizers,
    presets,
    schedules,
    splitting,
)
from mlpcli import task as tasks
from mlpcli.config import FULL_BATCH_OPTIMIZERS, Settings
from mlpcli.errors import DataError, UsageError, warn_or_fail
from mlpcli.limits import check_memory, network_bytes
from mlpcli.nn.network import MLP, Architecture
from mlpcli.nn.recipe import RecipeNet
from mlpcli.outputs import atomic_path, provenance, write_text
from mlpcli.preprocessing import Preprocessor, TargetEncoder
from mlpcli.training import EpochRecord, FitOptions, FitResult, Trainer

LOG = logging.getLogger("mlpcli")


# --------------------------------------------------------------------------- data
@dataclass
class PreparedData:
    """Encoded training (and validation) arrays plus what produced them."""

    X: np.ndarray
    Y: np.ndarray
    y_index: np.ndarray | None
    X_val: np.ndarray | None
    Y_val: np.ndarray | None
    y_index_val: np.ndarray | None
    sample_weight: np.ndarray | None
    preprocessor: Preprocessor
    target_encoder: TargetEncoder
    task: data.TaskInfo
    selection: data.ColumnSelection
    inputs: dict[str, str]  # source -> sha256
    n_rows: int
    n_dropped_targets: int
    split: pd.DataFrame = field(repr=False)  # id/row, set: train|valid


def read(path: str, settings: Settings) -> data.Table:
    d = settings.data
    return data.read_table(
        path,
        sep=d.sep,
        decimal=d.decimal,
        na_values=d.na_values,
        transpose=d.transpose,
        encoding=d.encoding,
        text_columns=d.id,
        thousands=d.thousands,
        numeric=d.numeric,
        sheet=d.sheet,
        layer=d.layer,
    )


@dataclass
class LoadedTable:
    """A table read with its columns chosen, rows without a target dropped, the task decided."""

    table: data.Table
    selection: data.ColumnSelection
    task: data.TaskInfo
    n_dropped: int
    extra_inputs: dict[str, str] = field(default_factory=dict)  # --labels: source -> sha256

    @property
    def frame(self) -> pd.DataFrame:
        return self.table.frame

    def class_codes(self) -> np.ndarray | None:
        """Class indices to stratify on (binary and multiclass), else None."""
        if not tasks.get(self.task.task).stratified:
            return None
        encoder = TargetEncoder().fit(
            self.frame, self.selection.targets, self.task.task, self.task.labels
        )
        strata: np.ndarray = encoder.encode(self.frame)[0]
        return strata

    def group_codes(self, column: str | None, pattern: str | None = None) -> np.ndarray | None:
        """Integer codes of the `--group` column (through `--group-pattern`), or None."""
        if column is None:
            if pattern is not None:
                raise UsageError("--group-pattern needs --group COL to apply to.")
            return None
        values = self.frame[column]
        if values.isna().any():
            raise DataError(
                f"{self.table.source}: --group column '{column}' has "
                f"{int(values.isna().sum())} missing value(s); fill them or drop those rows."
            )
        text = values.astype(str)
        if pattern is not None:
            capturing = re.compile(pattern).groups > 0
            found = text.str.extract(pattern if capturing else f"({pattern})", expand=False)
            if isinstance(found, pd.DataFrame):
                found = found.iloc[:, 0]
            if found.isna().any():
                first = text[found.isna()].iloc[0]
                raise DataError(
                    f"{self.table.source}: --group-pattern '{pattern}' does not match "
                    f"'{first}' in column '{column}'; adjust the pattern."
                )
            text = found
        codes: np.ndarray = pd.factorize(text)[0]
        return codes


def load_table(path: str, settings: Settings) -> LoadedTable:
    """Read a table, choose its columns, drop rows without a target and decide the task."""
    if not settings.data.target:
        raise UsageError("Name the target column with --target COL.")
    return select_table(read(path, settings), settings)


def frame_table(frame: pd.DataFrame, source: str = "the DataFrame") -> data.Table:
    """A table in memory as if read from a file; its checksum hashes the values and columns, so
    the provenance of a model fitted from Python still identifies its data."""
    import hashlib

    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update("\x1f".join(map(str, frame.columns)).encode("utf-8"))
    return data.Table(frame=frame, source=source, sha256=digest.hexdigest())


def select_table(table: data.Table, settings: Settings) -> LoadedTable:
    """Choose a table's columns, drop rows without a target and decide the task."""
    d = settings.data
    if not d.target:
        raise UsageError("Name the target column with --target COL.")
    extra_inputs = _join_labels(table, settings)
    drop = list(d.drop)
    if d.group is not None:
        if d.group not in table.frame.columns:
            raise DataError(f"{table.source}: --group column '{d.group}' does not exist.")
        if d.group not in d.target and d.group not in d.id:
            drop.append(d.group)
    ids = d.id
    if not ids and table.id_column is not None and table.id_column not in d.target:
        ids = (table.id_column,)  # R row names, the --transpose corner cell
    features = [*d.features, *_features_file(d.features_file, table, d.strict)]
    selection = data.select_columns(
        table.frame,
        d.target,
        ids,
        features or None,
        drop,
        d.categorical,
        source=table.source,
        numeric=d.numeric,
        strict=d.strict,
    )
    _check_unique_ids(table, selection.ids, d.group, d.strict)
    frame, n_dropped = data.drop_missing_targets(
        table.frame, selection.targets, source=table.source
    )
    if n_dropped:
        LOG.warning(f"{table.source}: dropped {n_dropped} row(s) whose target is missing.")
    table.frame = frame
    task = data.detect_task(frame, selection.targets, d.task, source=table.source)
    how = "detected; override with --task" if d.task == "auto" else "set with --task"
    task = _choose_positive(task, d.positive_class)
    positive = ""
    if tasks.get(task.task).has_positive_class and task.labels:
        why = "--positive-class" if d.positive_class else "change it with --positive-class"
        positive = f" Positive class: '{task.labels[1]}' ({why})."
    LOG.info(f"Task: {task.task}, {how}. Why: {task.reason}.{positive}")
    _check_class_count(task, len(frame), table.source, d.strict)
    return LoadedTable(table, selection, task, n_dropped, extra_inputs)


def _join_labels(table: data.Table, settings: Settings) -> dict[str, str]:
    """`--labels FILE --on COL`: add the sample sheet's columns to each row of DATA with the
    same ID. Rows of DATA without an entry get missing targets (dropped with a warning later);
    both kinds of unmatched IDs are counted and named in one warning."""
    d = settings.data
    if d.labels is None:
        if d.on is not None:
            raise UsageError("--on names the ID column of a --labels sample sheet; add --labels.")
        return {}
    on = d.on or table.id_column
    if on is None:
        raise UsageError("--labels needs --on COL, the ID column shared by both tables.")
    sheet = data.read_table(
        d.labels, na_values=d.na_values, encoding=d.encoding, text_columns=(on,)
    )
    for where, frame in ((table.source, table.frame), (sheet.source, sheet.frame)):
        if on not in frame.columns:
            raise DataError(f"--on column '{on}' not found in '{where}'.")
    keys = sheet.frame[on].astype(str)
    if keys.duplicated().any():
        first = keys[keys.duplicated()].iloc[0]
        raise DataError(
            f"'{sheet.source}': the --on column '{on}' repeats '{first}'; a sample sheet needs "
            "one row per ID."
        )
    shared = sorted(set(sheet.frame.columns) & set(table.frame.columns) - {on})
    if shared:
        raise DataError(
            f"Columns {', '.join(map(repr, shared[:5]))} are in both '{table.source}' and "
            f"'{sheet.source}'; drop them from one table."
        )
    ids = table.frame[on].astype(str)
    unlabelled = ids[~ids.isin(set(keys))]
    unused = keys[~keys.isin(set(ids))]
    if len(unlabelled) or len(unused):
        parts = []
        if len(unlabelled):
            parts.append(
                f"{len(unlabelled)} of {len(ids)} rows of '{table.source}' have no entry "
                f"(e.g. '{unlabelled.iloc[0]}')"
            )
        if len(unused):
            parts.append(
                f"{len(unused)} of {len(keys)} IDs of the sheet have no row in the data "
                f"(e.g. '{unused.iloc[0]}')"
            )
        warn_or_fail(f"--labels '{sheet.source}' joined on '{on}': {'; '.join(parts)}.", d.strict)
    extra = sheet.frame.drop(columns=on).set_axis(keys.to_numpy())
    joined = extra.reindex(ids.to_numpy()).reset_index(drop=True)
    table.frame = pd.concat([table.frame.reset_index(drop=True), joined], axis=1)
    return {sheet.source: sheet.sha256}


def _features_file(path: str | None, table: data.Table, strict: bool) -> list[str]:
    """`--features-file`: names one a line; names the table lacks are counted in a warning."""
    if path is None:
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"Cannot read --features-file '{path}': {error}.") from None
    names = [line.split("#", 1)[0].strip() for line in lines]
    names = list(dict.fromkeys(name for name in names if name))
    if not names:
        raise UsageError(f"--features-file '{path}' lists no column names.")
    present = {str(c) for c in table.frame.columns}
    absent = [name for name in names if name not in present]
    if len(absent) == len(names):
        raise DataError(
            f"None of the {len(names)} names in --features-file '{path}' is a column of "
            f"'{table.source}' (first: '{names[0]}'); check the file and the table's layout "
            "(--transpose)."
        )
    if absent:
        shown = ", ".join(f"'{n}'" for n in absent[:5]) + (", ..." if len(absent) > 5 else "")
        warn_or_fail(
            f"{len(absent)} of the {len(names)} names in --features-file '{path}' are not "
            f"columns of '{table.source}' and are skipped: {shown}.",
            strict,
        )
    return [name for name in names if name in present]


def _top_variance(
    frame: pd.DataFrame, selection: data.ColumnSelection, n: int | None
) -> data.ColumnSelection:
    """`--top-variance N`: the N numeric features that vary most on these (training) rows, in
    table order; categorical features stay. Fitted per training set, so cv folds do not leak."""
    numeric = selection.numeric
    if n is None or n >= len(numeric):
        return selection
    values = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: NaN, last
        variance = np.nanvar(values, axis=0)
    order = np.argsort(-np.nan_to_num(variance, nan=-1.0), kind="stable")
    keep = {numeric[i] for i in order[:n]}
    features = [c for c in selection.features if c in keep or c in selection.categorical]
    low, high = float(variance[order[n - 1]]), float(variance[order[0]])
    LOG.info(
        f"--top-variance {n}: kept the {n} most variable of {len(numeric)} numeric features "
        f"(variance {low:.3g} to {high:.3g} on the training rows)."
    )
    return dataclasses.replace(selection, features=features)


def _choose_positive(task: data.TaskInfo, positive: str | None) -> data.TaskInfo:
    """`--positive-class LABEL` puts LABEL second: a binary model's output is P(labels[1])."""
    if positive is None:
        return task
    if not tasks.get(task.task).has_positive_class or task.labels is None:
        raise UsageError(
            f"--positive-class applies to binary targets, but the task is {task.task}; "
            "leave it out."
        )
    if positive not in task.labels:
        raise UsageError(
            f"--positive-class got '{positive}'; choose one of: {', '.join(task.labels)}."
        )
    others = [label for label in task.labels if label != positive]
    return data.TaskInfo(task.task, task.reason, [*others, positive])


def _check_class_count(task: data.TaskInfo, n_rows: int, source: str, strict: bool) -> None:
    """More classes than sqrt(n) leaves a handful of samples per class: often an ID or a
    measurement given as --target, rarely a label worth learning."""
    if not tasks.get(task.task).checks_class_count or task.labels is None:
        return
    limit = math.sqrt(n_rows)
    if len(task.labels) > limit:
        warn_or_fail(
            f"{source}: the target has {len(task.labels)} classes in {n_rows} rows (more than "
            f"the square root of the row count, {limit:.1f}); is it really a label? For a "
            "numeric quantity pass --task regression.",
            strict,
        )


def _check_unique_ids(
    table: data.Table, ids: Sequence[str], group: str | None, strict: bool
) -> None:
    """Repeated IDs (several samples per patient) are carried into predictions as they are;
    the warning points at --group, which keeps such rows on one side of the split."""
    if not ids:
        return
    key = (
        table.frame[list(ids)].astype(str).agg("\x1f".join, axis=1)
        if len(ids) > 1
        else (table.frame[ids[0]])
    )
    repeated = key.duplicated(keep=False)
    if repeated.any():
        rows = np.flatnonzero(repeated.to_numpy())
        first = key.iloc[rows[0]]
        second = rows[1:][(key.iloc[rows[1:]] == first).to_numpy()][0]
        value = table.frame[list(ids)].iloc[rows[0]].tolist()
        shown = value[0] if len(value) == 1 else tuple(value)
        n_values = int(key[repeated].nunique())
        advice = (
            ""
            if group is not None
            else f" If rows with one ID belong together (one patient), pass --group {ids[0]} so "
            "they stay on one side of the split."
        )
        warn_or_fail(
            f"{table.source}: ID column(s) {', '.join(ids)} repeat {n_values} value(s) in "
            f"{len(rows)} rows, e.g. {shown!r} in data rows {rows[0] + 1} and {second + 1}; "
            f"they are carried into predictions as they are.{advice}",
            strict,
        )


def encode_split(
    loaded: LoadedTable,
    settings: Settings,
    train_frame: pd.DataFrame,
    valid_frame: pd.DataFrame | None,
    split: pd.DataFrame | None = None,
    inputs: dict[str, str] | None = None,
    sample_weight: np.ndarray | None = None,
) -> PreparedData:
    """Fit preprocessing and target encoding on the training rows, then encode both sides.

    Regression targets are standardised with the training rows' statistics only, so nothing
    leaks from validation (or a cross-validation fold) into training. `sample_weight` (one per
    training row, from the Python API) multiplies the class weights.
    """
    p = settings.preprocess
    task = loaded.task
    selection = _top_variance(train_frame, loaded.selection, p.top_variance)
    encoder = TargetEncoder().fit(train_frame, selection.targets, task.task, task.labels)
    pre = Preprocessor(
        impute=p.impute,
        fill_value=p.fill_value,
        missing_indicators=p.missing_indicators,
        scale=p.scale,
        clip=p.clip,
        log1p=p.log1p,
        max_levels=p.max_levels,
        min_level_count=p.min_level_count,
        high_cardinality=p.high_cardinality,
        strict=settings.data.strict,
    )
    dtype = np.dtype(settings.model.dtype)
    n_rows = len(train_frame) + (0 if valid_frame is None else len(valid_frame))
    # The encoded targets and the network's outputs on them: (rows x outputs) several times.
    check_memory(
        4.0 * n_rows * encoder.n_outputs * dtype.itemsize,
        f"Encoding {n_rows:,} rows for {encoder.n_outputs:,} network outputs (classes)",
        "merge rare classes, or train on fewer rows.",
    )
    X = pre.fit(train_frame, selection.features, selection.categorical).transform(
        train_frame, dtype
    )
    y_index, Y = _encode(encoder, train_frame, dtype)
    X_val = Y_val = y_index_val = None
    if valid_frame is not None and len(valid_frame):
        X_val = pre.transform(valid_frame, dtype)
        y_index_val, Y_val = _encode(encoder, valid_frame, dtype)
    weight = settings.train.class_weight
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=dtype)
    if weight is not None:
        by_class = encoder.class_weights(y_index, weight).astype(dtype)
        sample_weight = by_class if sample_weight is None else sample_weight * by_class
    return PreparedData(
        X=X,
        Y=Y,
        y_index=y_index,
        X_val=X_val,
        Y_val=Y_val,
        y_index_val=y_index_val,
        sample_weight=sample_weight,
        preprocessor=pre,
        target_encoder=encoder,
        task=task,
        selection=selection,
        inputs=inputs or {loaded.table.source: loaded.table.sha256},
        n_rows=len(loaded.frame),
        n_dropped_targets=loaded.n_dropped,
        split=split if split is not None else pd.DataFrame(),
    )


def prepare_data(path: str, settings: Settings, rng: np.random.Generator) -> PreparedData:
    """Everything before training: read, select, split, fit preprocessing on training rows."""
    return prepare_loaded(load_table(path, settings), settings, rng)


def prepare_loaded(
    loaded: LoadedTable,
    settings: Settings,
    rng: np.random.Generator,
    sample_weight: np.ndarray | None = None,
) -> PreparedData:
    """Split a selected table and fit preprocessing on its training rows; `sample_weight` has
    one weight per row of `loaded.frame` and follows the rows into the training side."""
    d = settings.data
    frame = loaded.frame
    inputs = {loaded.table.source: loaded.table.sha256, **loaded.extra_inputs}
    valid_frame: pd.DataFrame | None = None
    train_idx, valid_idx = np.arange(len(frame)), np.arange(0)
    if d.valid_file is not None:
        valid_table = read(d.valid_file, settings)
        valid_frame, n_valid_dropped = data.drop_missing_targets(
            valid_table.frame, loaded.selection.targets, source=valid_table.source
        )
        if n_valid_dropped:
            LOG.warning(
                f"{valid_table.source}: dropped {n_valid_dropped} row(s) whose target is missing."
            )
        inputs[valid_table.source] = valid_table.sha256
    elif d.valid_fraction > 0:
        train_idx, valid_idx = splitting.train_valid_split(
            len(frame),
            d.valid_fraction,
            rng,
            y=loaded.class_codes(),
            groups=loaded.group_codes(d.group, d.group_pattern),
            labels=loaded.task.labels,
            strict=d.strict,
        )
        valid_frame = frame.iloc[valid_idx]
    train_frame = frame.iloc[train_idx] if len(valid_idx) else frame
    split = _split_frame(frame, loaded.selection.ids, train_idx, valid_idx)
    if d.valid_file is not None and valid_frame is not None:
        # The --valid-file rows are listed after the training rows, as "valid".
        extra = _split_frame(
            valid_frame, loaded.selection.ids, np.arange(0), np.arange(len(valid_frame))
        )
        split = pd.concat([split, extra], ignore_index=True)
    weight = None if sample_weight is None else np.asarray(sample_weight)[train_idx]
    return encode_split(loaded, settings, train_frame, valid_frame, split, inputs, weight)


def _encode(encoder: TargetEncoder, frame: pd.DataFrame, dtype: np.dtype) -> tuple[Any, np.ndarray]:
    encoded = encoder.encode(frame, dtype)
    if encoder.classification:
        indices, one_hot = encoded  # (class indices, one-hot rows)
        return indices, one_hot
    return None, encoded


def _split_frame(
    frame: pd.DataFrame,
    ids: tuple[str, ...] | list[str],
    train_idx: np.ndarray,
    valid_idx: np.ndarray,
) -> pd.DataFrame:
    """Each sample's ID (or 1-based row number) and whether it trained or validated."""
    role = np.full(len(frame), "train", dtype=object)
    role[valid_idx] = "valid"
    out = (
        frame[list(ids)].reset_index(drop=True)
        if ids
        else pd.DataFrame({"row": np.arange(1, len(frame) + 1)})
    )
    out["set"] = role
    return out


# --------------------------------------------------------------------------- model
def build_network(
    settings: Settings, n_inputs: int, n_outputs: int, kind: str, rng: np.random.Generator
) -> MLP:
    m = settings.model
    sizes = [n_inputs, *m.hidden, n_outputs]
    check_memory(
        network_bytes(sizes, np.dtype(m.dtype).itemsize),
        f"A network of layer sizes {' -> '.join(f'{w:,}' for w in sizes)}",
        "give smaller --hidden sizes.",
    )
    loss = tasks.get(kind).default_loss if m.loss == "auto" else m.loss
    activation = m.activation * len(m.hidden) if len(m.activation) == 1 else m.activation
    activation = tuple(presets.auto_activation(kind) if a == "auto" else a for a in activation)
    decoupled = settings.train.optimizer == "adamw"
    arch = Architecture(
        n_inputs=n_inputs,
        hidden_layer_sizes=m.hidden,
        n_outputs=n_outputs,
        activation=tuple(activation),
        output_activation=_output_activation(m.output_activation, loss, kind),
        loss=loss,
        dtype=m.dtype,
        batchnorm=m.batchnorm,
        dropout=m.dropout,
        residual=m.residual,
        weight_decay=0.0 if decoupled else settings.train.weight_decay or 0.0,
        init=None if m.init == "auto" else m.init,
        leaky_relu_slope=m.leaky_slope,
    )
    return MLP.from_architecture(arch, seed=rng)


def _output_activation(name: str, loss: str, kind: str) -> str:
    """`auto`: the activation a cross-entropy pairs with, else the task's own."""
    if name != "auto":
        return name
    if loss in ("bce", "ce"):
        return "sigmoid" if loss == "bce" else "softmax"
    return tasks.get(kind).output_activation


def build_optimizer(settings: Settings) -> optimizers.Optimizer:
    """The optimizer; a hyperparameter it does not take (`--momentum` for adam) is an error."""
    t = settings.train
    given = {"momentum": t.momentum, "beta1": t.beta1, "beta2": t.beta2, "eps": t.eps}
    if t.optimizer == "adamw":
        given["weight_decay"] = t.weight_decay
    hyper = {k: v for k, v in given.items() if v is not None}
    return optimizers.get(t.optimizer, lr=t.lr, **hyper)


def build_schedule(settings: Settings, lr0: float) -> schedules.Schedule:
    """The learning-rate schedule; an option it does not take (`--lr-gamma` for cosine) errs."""
    t = settings.train
    given = {
        "step_size": t.lr_step_size,
        "gamma": t.lr_gamma,
        "factor": t.lr_factor,
        "patience": t.lr_patience,
        "min_lr": t.min_lr,
    }
    hyper = {k: v for k, v in given.items() if v is not None}
    return schedules.get(t.schedule, lr0, t.epochs, **hyper)


def fit_options(settings: Settings, kind: str, has_validation: bool) -> FitOptions:
    t = settings.train
    if t.batch_size == "auto":
        batch: int | None = None if t.optimizer in FULL_BATCH_OPTIMIZERS else 32
    elif t.batch_size == "full":
        batch = None
    else:
        batch = int(t.batch_size)
    monitor = t.monitor
    if not has_validation and monitor != "train_loss":
        LOG.warning(f"No validation rows: early stopping watches train_loss instead of {monitor}.")
        monitor = "train_loss"
    name, _, greater = epoch_metric(kind)
    return FitOptions(
        epochs=t.epochs,
        batch_size=batch,
        patience=t.patience,
        min_delta=t.min_delta,
        monitor=monitor,
        clip_norm=t.clip_norm,
        metric_name=name,
        metric_greater_is_better=greater,
    )


def epoch_metric(kind: str) -> tuple[str, Callable[[np.ndarray, np.ndarray], float], bool]:
    """The validation metric tracked every epoch: name, function of (encoded Y, outputs P), and
    whether greater is better (the task's default metric)."""
    spec = tasks.get(kind)
    metric = spec.metric(None)
    return metric.name, spec.epoch_score, metric.greater_is_better


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS threads for the block (`--threads`); results are reproducible per count."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


# --------------------------------------------------------------------------- train
@dataclass
class TrainOutcome:
    settings: Settings
    prepared: PreparedData
    net: MLP
    result: FitResult
    metrics: dict[str, Any]
    metadata: dict[str, Any]
    arrays: dict[str, np.ndarray]
    written: list[str] = field(default_factory=list)


def make_trainer(settings: Settings, prepared: PreparedData, rng: np.random.Generator) -> Trainer:
    """The network, optimizer, schedule and loop options for prepared data."""
    kind = prepared.task.task
    options = fit_options(settings, kind, prepared.X_val is not None)
    n_outputs = prepared.target_encoder.n_outputs
    if presets.uses_recipe(settings):
        return presets.make_recipe_trainer(
            settings, prepared.X, prepared.Y, kind, prepared.preprocessor, options, rng,
            epoch_metric(kind)[1],
        )  # fmt: skip
    presets.check_classic(settings)
    net = build_network(settings, prepared.X.shape[1], n_outputs, kind, rng)
    optimizer = build_optimizer(settings)
    schedule = build_schedule(settings, optimizer.lr)
    return Trainer(net, optimizer, options, rng, schedule, epoch_metric(kind)[1])


def fit_model(
    settings: Settings,
    prepared: PreparedData,
    rng: np.random.Generator,
    callback: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    trainer: Trainer | None = None,
) -> tuple[MLP, FitResult]:
    """Train on prepared arrays (with a fresh trainer, or a given one, e.g. resumed)."""
    trainer = trainer or make_trainer(settings, prepared, rng)
    with blas_threads(settings.train.threads):
        result = trainer.fit(
            prepared.X,
            prepared.Y,
            prepared.X_val,
            prepared.Y_val,
            presets.training_weights(trainer.net, prepared.sample_weight, len(prepared.X)),
            callback=callback,
            should_stop=should_stop,
            batches=_disk_batches(prepared, trainer),
        )
    return trainer.net, result


def _disk_batches(prepared: PreparedData, trainer: Trainer) -> Any:
    """Block-shuffled batches when the training rows are on disk (out of core), else None."""
    from mlpcli.sampling import BlockBatches, RowFile

    if not isinstance(prepared.X, RowFile):
        return None
    batch_size = trainer.options.batch_size
    if batch_size is None:
        raise UsageError("Out-of-core training takes mini-batches; give --batch-size N.")
    drop_single = bool(trainer.net.batchnorm_layers())
    return BlockBatches(prepared.X, prepared.Y, prepared.sample_weight, batch_size,
                        drop_single=drop_single)  # fmt: skip


def evaluation_report(
    encoder: TargetEncoder,
    net: MLP,
    X: np.ndarray,
    y_index: np.ndarray | None,
    Y: np.ndarray,
    threshold: float = tasks.THRESHOLD,
) -> dict[str, Any]:
    """Full metrics of a network on encoded data, in the original label space / units."""
    from mlpcli.sampling import RowFile

    spec = tasks.get(encoder.task)
    if isinstance(X, RowFile):  # out of core: block by block from disk, on the first rows
        from mlpcli.outofcore import report_rows

        X, y_index, Y, outputs = report_rows(net, X, y_index, Y)
    else:
        outputs = net.forward(X)
    return spec.report(encoder, outputs, spec.truth(encoder, y_index, Y), threshold)


def train(
    path: str,
    settings: Settings,
    callback: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    command: list[str] | None = None,
    checkpoint: str | None = None,
    checkpoint_every: int = 1,
    resume: str | None = None,
    test_file: str | None = None,
    out_of_core: str = "off",
) -> TrainOutcome:
    """Read, prepare, train and evaluate; returns everything needed to save the model.

    `on_start` hears about the prepared data just before the first epoch. With `checkpoint`,
    the best model so far plus the whole loop state is saved every `checkpoint_every` epochs;
    `resume` continues from such a file and ends with the weights of an uninterrupted run.
    `test_file` is scored after training, as "test" metrics kept apart from validation ones.
    `out_of_core` (auto|on|off) trains from the table cache on disk (`outofcore`).
    """
    from mlpcli import outofcore

    rng = np.random.default_rng(settings.train.seed)
    if outofcore.wanted(path, out_of_core, settings.data.sep):
        prepared = outofcore.prepare_data(path, settings, rng)
    else:
        prepared = prepare_data(path, settings, rng)
    calibration.check_options(settings, prepared.task.task, prepared.X_val is not None)
    if on_start is not None:
        on_start(
            {
                "epochs": settings.train.epochs,
                "patience": settings.train.patience,
                "metric_name": epoch_metric(prepared.task.task)[0],
                "n_train": len(prepared.X),
                "n_valid": 0 if prepared.X_val is None else len(prepared.X_val),
                "n_features": int(prepared.X.shape[1]),
            }
        )
    trainer = make_trainer(settings, prepared, rng)
    if resume is not None:
        restore_checkpoint(trainer, resume, prepared)
    on_epoch = callback
    if checkpoint is not None:

        def on_epoch(record: EpochRecord) -> None:
            if callback is not None:
                callback(record)
            if record.epoch % checkpoint_every == 0:
                save_checkpoint(checkpoint, trainer, settings, prepared, command)

    net, result = fit_model(settings, prepared, rng, on_epoch, should_stop, trainer)
    compare = settings.train.baselines and result.stop_reason != "interrupted"
    return _outcome(settings, prepared, net, result, command, test_file, compare)


def train_frame(
    frame: pd.DataFrame,
    settings: Settings,
    sample_weight: np.ndarray | None = None,
    command: list[str] | None = None,
    source: str = "the DataFrame",
) -> TrainOutcome:
    """`train` on a table in memory (the scikit-learn estimators' path): the same selection,
    split, preprocessing, network and loop as `mlpcli train`, and the same model contents."""
    rng = np.random.default_rng(settings.train.seed)
    loaded = select_table(frame_table(frame, source), settings)
    if sample_weight is not None and len(sample_weight) != len(loaded.frame):
        raise DataError(
            f"sample_weight has {len(sample_weight)} value(s) for {len(loaded.frame)} row(s)."
        )
    prepared = prepare_loaded(loaded, settings, rng, sample_weight)
    calibration.check_options(settings, prepared.task.task, prepared.X_val is not None)
    net, result = fit_model(settings, prepared, rng)
    return _outcome(settings, prepared, net, result, command)


def _outcome(
    settings: Settings,
    prepared: PreparedData,
    net: MLP,
    result: FitResult,
    command: list[str] | None,
    test_file: str | None = None,
    compare: bool = False,
) -> TrainOutcome:
    """The metrics on both sides (and on `test_file`) and the model file's contents; metrics
    are those of the model as saved (with its temperature and decision threshold). With
    `compare`, the constant and linear baselines on the validation rows (`baselines`)."""
    posthoc = calibration.fit_posthoc(
        settings, prepared.task.task, net, prepared.X_val, prepared.y_index_val
    )
    scored, cut, encoder = posthoc.net, posthoc.threshold, prepared.target_encoder
    report: dict[str, Any] = {
        "train": evaluation_report(encoder, scored, prepared.X, prepared.y_index, prepared.Y, cut)
    }
    if prepared.X_val is not None and prepared.Y_val is not None:
        report["validation"] = evaluation_report(
            encoder, scored, prepared.X_val, prepared.y_index_val, prepared.Y_val, cut
        )
    if test_file is not None:
        report["test"] = _test_report(test_file, settings, prepared, scored, cut)
    metadata, arrays = model_contents(settings, prepared, net, result, report, command)
    metadata.update(posthoc.metadata)
    from mlpcli.sampling import RowFile

    if isinstance(prepared.X, RowFile):  # out of core: the baselines read X whole
        compare = False
    if compare and prepared.X_val is not None and prepared.Y_val is not None:
        metadata["baselines"] = baselines.compare(
            settings, prepared, scored, cut, prepared.X_val, prepared.Y_val
        )
    return TrainOutcome(settings, prepared, net, result, report, metadata, arrays)


def _test_report(
    path: str, settings: Settings, prepared: PreparedData, net: MLP, threshold: float
) -> dict[str, Any]:
    """`train --test-file`: metrics of the trained network on a table it never saw (neither
    training nor early stopping); its checksum joins the provenance."""
    table = read(path, settings)
    frame, n_dropped = data.drop_missing_targets(
        table.frame, prepared.selection.targets, source=table.source
    )
    if n_dropped:
        LOG.warning(f"{table.source}: dropped {n_dropped} test row(s) whose target is missing.")
    dtype = np.dtype(settings.model.dtype)
    X = prepared.preprocessor.transform(frame, dtype)
    y_index, Y = _encode(prepared.target_encoder, frame, dtype)
    prepared.inputs[table.source] = table.sha256
    return evaluation_report(prepared.target_encoder, net, X, y_index, Y, threshold)


def model_contents(
    settings: Settings,
    prepared: PreparedData,
    net: MLP,
    result: FitResult,
    report: dict[str, Any],
    command: list[str] | None,
    net_arrays: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    pre_meta, pre_arrays = prepared.preprocessor.to_state()
    target_meta, target_arrays = prepared.target_encoder.to_state()
    net_arrays = net.state_arrays() if net_arrays is None else net_arrays
    arrays = {f"net.{k}": v for k, v in net_arrays.items()}
    arrays.update(pre_arrays)
    arrays.update(target_arrays)
    metadata = {
        "mlpcli_version": __version__,
        "task": prepared.task.task,
        "task_reason": prepared.task.reason,
        "architecture": net.architecture.to_dict(),
        "layer_names": net.layer_names,
        "n_parameters": net.n_parameters(),
        "preprocessing": pre_meta,
        "target": target_meta,
        "id_columns": list(prepared.selection.ids),
        "feature_columns": list(prepared.selection.features),
        "settings": settings.to_dict(),
        "optimizer": {
            "name": settings.train.optimizer,
            **presets.optimizer_hyperparameters(net, build_optimizer(settings)),
        },
        "training": {
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_value": result.best_value,
            "monitor": result.monitor,
            "stop_reason": result.stop_reason,
            "seconds": round(result.seconds, 3),
            "n_train": len(prepared.X),
            "n_valid": int(0 if prepared.X_val is None else len(prepared.X_val)),
            "n_dropped_targets": prepared.n_dropped_targets,
            "history": [r.to_dict() for r in result.history],
        },
        "metrics": report,
        "provenance": provenance(command, prepared.inputs, settings.train.seed),
        "data": training_fingerprints(prepared),
    }
    if isinstance(net, RecipeNet):
        metadata["recipe"] = presets.recipe_metadata(net, settings)
    return metadata, arrays


def training_fingerprints(prepared: PreparedData) -> dict[str, Any]:
    """Per split, the table's SHA-256, row count and a sketch of its IDs (`overlap`), so that
    `evaluate`, `explain` and `report` can tell when they are given training rows."""
    from mlpcli import overlap

    shas = list(prepared.inputs.values())  # the training table first, then any --valid-file
    ids = list(prepared.selection.ids)
    split = prepared.split
    found: dict[str, Any] = {}
    for role, name, sha in (("train", "train", shas[0]), ("validation", "valid", shas[-1])):
        rows = split[split["set"] == name]
        if role == "validation" and len(rows) == 0:
            continue
        values = overlap.row_ids([rows[c].tolist() for c in ids]) if ids else None
        found[role] = overlap.fingerprint(sha, len(rows), values)
    return found


def history_csv(result: FitResult, metric_name: str) -> str:
    """One row per epoch with every tracked value."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "epoch",
            "train_loss",
            "val_loss",
            f"val_{metric_name}",
            "lr",
            "seconds",
            "improved",
            "best_epoch",
            *[f"grad_norm_{name}" for name in result.layer_names],
        ]
    )
    for r in result.history:
        writer.writerow(
            [
                r.epoch,
                r.train_loss,
                _blank(r.val_loss),
                _blank(r.val_metric),
                r.lr,
                round(r.seconds, 4),
                int(r.improved),
                r.best_epoch,
                *r.grad_norms,
            ]
        )
    return buffer.getvalue()


def _blank(value: float | None) -> Any:
    return "" if value is None else value


def write_outputs(
    outcome: TrainOutcome,
    out: str,
    metrics_out: str | None = None,
    history_out: str | None = None,
    split_out: str | None = None,
    interrupted: bool = False,
) -> list[str]:
    """Write the model and the optional side files (staged together when the caller runs in
    `outputs.staged_outputs`, as the CLI does); returns their paths."""
    metadata = outcome.metadata
    if interrupted:
        metadata = {**metadata, "training": {**metadata["training"], "interrupted": True}}
    modelfile.save(out, outcome.arrays, metadata)
    written = [out]
    if metrics_out is not None:
        doc = {
            "task": metadata["task"],
            "metrics": metadata["metrics"],
            "training": {k: v for k, v in metadata["training"].items() if k != "history"},
            "settings": metadata["settings"],
            "provenance": metadata["provenance"],
            **{k: metadata[k] for k in (*calibration.METADATA_KEYS, "baselines") if k in metadata},
        }
        write_text(metrics_out, json.dumps(doc, indent=2, allow_nan=False) + "\n", "--metrics-out")
        written.append(metrics_out)
    if history_out is not None:
        metric_name = epoch_metric(outcome.prepared.task.task)[0]
        write_text(history_out, history_csv(outcome.result, metric_name), "--history-out")
        written.append(history_out)
    if split_out is not None:
        with atomic_path(split_out, "--split-out") as tmp:
            outcome.prepared.split.to_csv(tmp, index=False)
        written.append(split_out)
    return written


# --------------------------------------------------------------------------- checkpoints
CHECKPOINT_PREFIX = "ckpt."


def save_checkpoint(
    path: str,
    trainer: Trainer,
    settings: Settings,
    prepared: PreparedData,
    command: list[str] | None = None,
) -> None:
    """A model file of the best weights so far that also carries the whole loop state.

    `mlpcli predict` can use it as it is; `train --resume` continues from it exactly.
    """
    state_meta, state_arrays = trainer.state_dict()
    result = trainer.partial_result()
    metadata, arrays = model_contents(
        settings, prepared, trainer.net, result, {}, command, trainer.best_state_arrays()
    )
    metadata["checkpoint"] = state_meta
    arrays.update({CHECKPOINT_PREFIX + k: v for k, v in state_arrays.items()})
    # Written at once, not staged: a checkpoint must survive the run being killed.
    modelfile.save(path, arrays, metadata, option="--checkpoint", now=True)


def restore_checkpoint(trainer: Trainer, path: str, prepared: PreparedData) -> None:
    """Load a checkpoint's loop state into a trainer built from the same data and settings."""
    from mlpcli.errors import ModelFileError

    with modelfile.ModelArchive(path) as archive:
        meta = archive.metadata
        limit = trainer.net.flat_params.size  # no loop state is larger than the parameters
        names = [n for n in archive.members if n.startswith(CHECKPOINT_PREFIX)]
        arrays = archive.arrays(dict.fromkeys(names, limit)) if "checkpoint" in meta else {}
    if "checkpoint" not in meta:
        raise ModelFileError(
            f"--resume '{path}' is a model file, not a checkpoint; write one with --checkpoint."
        )
    recorded = {i["path"]: i["sha256"] for i in meta.get("provenance", {}).get("inputs", [])}
    if sorted(recorded.values()) != sorted(prepared.inputs.values()):
        raise UsageError(
            f"--resume '{path}' was made from other data ({', '.join(recorded) or 'unknown'}); "
            "resume with the same input file."
        )
    state = {
        k[len(CHECKPOINT_PREFIX) :]: v for k, v in arrays.items() if k.startswith(CHECKPOINT_PREFIX)
    }
    try:
        trainer.load_state_dict(meta["checkpoint"], state)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"--resume '{path}': the checkpoint is damaged ({exc}).") from None
