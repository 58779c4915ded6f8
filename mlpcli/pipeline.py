"""The jobs behind the commands, as library functions: train (prepare, fit, score), then save
the model and its side files, and checkpoints.

Preparation lives in `prepare`, building and fitting the network in `fitting`; `cv` and `tune`
use those two directly. Nothing here prints: decisions and warnings go to the `mlpcli` logger,
progress to the caller's callback.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpcli import (
    __version__,
    auto,
    baselines,
    calibration,
    data,
    fitting,
    modelfile,
    outofcore,
    parallel,
    prepare,
    presets,
)
from mlpcli import task as tasks
from mlpcli.config import Settings
from mlpcli.errors import DataError, UsageError
from mlpcli.limits import return_freed_memory
from mlpcli.nn.network import MLP
from mlpcli.nn.recipe import RecipeNet
from mlpcli.outputs import atomic_path, provenance, write_text
from mlpcli.prepare import PreparedData
from mlpcli.target_encoding import TargetEncoder
from mlpcli.training import EpochRecord, FitResult, Trainer

LOG = logging.getLogger("mlpcli")


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


def evaluation_report(
    encoder: TargetEncoder,
    net: MLP,
    X: np.ndarray,
    y_index: np.ndarray | None,
    Y: np.ndarray,
    threshold: float = tasks.THRESHOLD,
    outputs: np.ndarray | None = None,
) -> dict[str, Any]:
    """Full metrics of a network on encoded data, in the original label space / units;
    `outputs`, the network's on X when the caller has them."""
    from mlpcli.sampling import RowFile

    if isinstance(X, RowFile):  # out of core: every row, block by block from disk
        return outofcore.streamed_report(encoder, net, X, y_index, Y, threshold)
    spec = tasks.get(encoder.task)
    P = net.forward(X) if outputs is None else outputs
    report = spec.report(encoder, P, spec.truth(encoder, y_index, Y), threshold)
    return_freed_memory()  # the scores' temporaries, before the next step's
    return report


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
    placement: parallel.Placement | None = None,
) -> TrainOutcome:
    """Read, prepare, train and evaluate; returns everything needed to save the model.

    `on_start` hears about the prepared data just before the first epoch. With `checkpoint`,
    the best model so far plus the whole loop state is saved every `checkpoint_every` epochs;
    `resume` continues from such a file and ends with the weights of an uninterrupted run.
    `test_file` is scored after training, as "test" metrics kept apart from validation ones.
    `out_of_core` (auto|on|off) trains from the table cache on disk (`outofcore`).
    `placement` runs the groups of `--ensemble-groups` (`members`) on local processes or dask.
    """
    from mlpcli import members

    placement = placement or parallel.Placement()
    ooc = outofcore.wanted(path, out_of_core, settings.data.sep)
    if ooc and auto.is_auto(settings):
        LOG.info("Out of core, --preset auto trains the lecture's MLP (--preset classic).")
        settings = auto.out_of_core_settings(settings)
    members.check(settings, placement, out_of_core=ooc, checkpoint=bool(checkpoint or resume))
    rng = np.random.default_rng(settings.train.seed)
    if ooc:
        prepared = outofcore.prepare_data(path, settings, rng)
    else:
        prepared = prepare.prepare_data(path, settings, rng)
    calibration.check_options(settings, prepared.task.task, prepared.X_val is not None)
    if on_start is not None and not auto.is_auto(settings):  # auto: once per candidate
        on_start(_start_info(settings, prepared))
    if settings.model.ensemble_groups > 1:
        net, result, groups = members.fit_groups(path, settings, prepared, placement)
        outcome = _outcome(settings, prepared, net, result, command, test_file,
                           settings.train.baselines)  # fmt: skip
        outcome.metadata["training"]["groups"] = groups
        return outcome
    if auto.is_auto(settings):
        if checkpoint or resume:
            raise UsageError(
                "--checkpoint/--resume save one network's loop; --preset auto trains two. "
                "Give --preset classic or --preset realmlp_td."
            )

        def prepare_for(chosen: Settings) -> tuple[PreparedData, np.random.Generator]:
            own = np.random.default_rng(settings.train.seed)  # the same split, its own encoding
            return prepare.prepare_data(path, chosen, own), own

        def on_candidate(name: str, chosen: Settings, arrays: PreparedData) -> None:
            if on_start is not None:
                on_start({**_start_info(chosen, arrays), "candidate": name})

        net, result = auto.fit(
            settings, prepared, rng, fitting.fit_model, callback, should_stop, prepare_for,
            on_candidate,
        )  # fmt: skip
        prepared = result.prepared or prepared
        compare = settings.train.baselines and result.stop_reason != "interrupted"
        return _outcome(settings, prepared, net, result, command, test_file, compare)
    trainer = fitting.make_trainer(settings, prepared, rng)
    if resume is not None:
        restore_checkpoint(trainer, resume, prepared)
    on_epoch = callback
    if checkpoint is not None:

        def on_epoch(record: EpochRecord) -> None:
            if callback is not None:
                callback(record)
            if record.epoch % checkpoint_every == 0:
                save_checkpoint(checkpoint, trainer, settings, prepared, command)

    net, result = fitting.fit_model(settings, prepared, rng, on_epoch, should_stop, trainer)
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
    loaded = prepare.select_table(prepare.frame_table(frame, source), settings)
    if sample_weight is not None and len(sample_weight) != len(loaded.frame):
        raise DataError(
            f"sample_weight has {len(sample_weight)} value(s) for {len(loaded.frame)} row(s)."
        )
    prepared = prepare.prepare_loaded(loaded, settings, rng, sample_weight)
    calibration.check_options(settings, prepared.task.task, prepared.X_val is not None)
    net, result = fitting.fit_model(settings, prepared, rng)
    return _outcome(settings, prepared, net, result, command)


def _start_info(settings: Settings, prepared: PreparedData) -> dict[str, Any]:
    """What `on_start` hears just before a network's first epoch."""
    return {
        "epochs": settings.train.epochs,
        "patience": settings.train.patience,
        "metric_name": fitting.epoch_metric(prepared.task.task)[0],
        "n_train": len(prepared.X),
        "n_valid": 0 if prepared.X_val is None else len(prepared.X_val),
        "n_features": int(prepared.X.shape[1]),
    }


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
    `compare`, the constant and linear baselines on the validation rows (`baselines`).
    After `--preset auto` the settings are the winner's, and its choice is kept (`auto`)."""
    if isinstance(result, auto.AutoResult) and result.settings is not None:
        settings = result.settings
    posthoc = calibration.fit_posthoc(
        settings, prepared.task.task, net, prepared.X_val, prepared.y_index_val
    )
    scored, cut, encoder = posthoc.net, posthoc.threshold, prepared.target_encoder
    from mlpcli.sampling import RowFile

    return_freed_memory()  # training's, before the scores of every row
    sides = {"train": (prepared.X, prepared.y_index, prepared.Y)}
    if prepared.X_val is not None and prepared.Y_val is not None:
        sides["validation"] = (prepared.X_val, prepared.y_index_val, prepared.Y_val)
    # Each side's outputs once, for its metrics and the baselines (in memory: out of core the
    # report streams them): a second pass over 1M rows was its own 0.1 GB peak.
    outputs = {k: scored.forward(X) for k, (X, _, _) in sides.items() if not isinstance(X, RowFile)}
    report: dict[str, Any] = {
        k: evaluation_report(encoder, scored, X, y, Y, cut, outputs.get(k))
        for k, (X, y, Y) in sides.items()
    }
    if test_file is not None:
        report["test"] = _test_report(test_file, settings, prepared, scored, cut)
    metadata, arrays = model_contents(settings, prepared, net, result, report, command)
    metadata.update(posthoc.metadata)
    if isinstance(result, auto.AutoResult) and result.choice is not None:
        metadata["auto"] = result.choice.to_dict()
    if isinstance(prepared.X, RowFile):  # out of core: the baselines read X whole
        compare = False
    if compare and prepared.X_val is not None and prepared.Y_val is not None:
        return_freed_memory()  # the fingerprints' IDs, before the baselines score every row
        metadata["baselines"] = baselines.compare(
            settings, prepared, scored, cut, prepared.X_val, prepared.Y_val, outputs=outputs
        )
    return TrainOutcome(settings, prepared, net, result, report, metadata, arrays)


def _test_report(
    path: str, settings: Settings, prepared: PreparedData, net: MLP, threshold: float
) -> dict[str, Any]:
    """`train --test-file`: metrics of the trained network on a table it never saw (neither
    training nor early stopping); its checksum joins the provenance."""
    table = prepare.read(path, settings)
    frame, n_dropped = data.drop_missing_targets(
        table.frame, prepared.selection.targets, source=table.source
    )
    if n_dropped:
        LOG.warning(f"{table.source}: dropped {n_dropped} test row(s) whose target is missing.")
    dtype = np.dtype(settings.model.dtype)
    X = prepared.preprocessor.transform(frame, dtype)
    y_index, Y = prepare.encode_targets(prepared.target_encoder, frame, dtype)
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
            **presets.optimizer_hyperparameters(net, fitting.build_optimizer(settings)),
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
            **({} if result.batch_size is None else {"batch_size": result.batch_size}),
            "history": [r.to_dict() for r in result.history],
        },
        "metrics": report,
        "provenance": provenance(command, prepared.inputs, settings.train.seed),
        "data": training_fingerprints(prepared),
    }
    if isinstance(net, RecipeNet):
        metadata["recipe"] = presets.recipe_metadata(net, settings)
    return metadata, arrays


#: IDs turned into strings at a time by `training_fingerprints`.
ID_BLOCK_ROWS = 65_536


def training_fingerprints(prepared: PreparedData) -> dict[str, Any]:
    """Per split, the table's SHA-256, row count and a sketch of its IDs (`overlap`), so that
    `evaluate`, `explain` and `report` can tell when they are given training rows."""
    from mlpcli import overlap

    shas = list(prepared.inputs.values())  # the training table first, then any --valid-file
    ids = list(prepared.selection.ids)
    split = prepared.split
    found: dict[str, Any] = {}
    for role, name, sha in (("train", "train", shas[0]), ("validation", "valid", shas[-1])):
        # Row numbers, not a filtered copy of the frame: out of core it has tens of millions.
        rows = np.flatnonzero((split["set"] == name).to_numpy())  # by codes if categorical
        if role == "validation" and len(rows) == 0:
            continue
        values = _row_ids(split, ids, rows) if ids else None
        found[role] = overlap.fingerprint(sha, len(rows), values)
    return found


def _row_ids(split: pd.DataFrame, ids: list[str], rows: np.ndarray) -> Iterator[str]:
    """The ID strings of `rows`, a block at a time: never a Python string per row at once
    (the blocks chained in C: a generator resumed per ID cost a tenth of the hashing)."""
    import itertools

    from mlpcli import overlap

    blocks = (
        overlap.row_ids([split[c].iloc[rows[start : start + ID_BLOCK_ROWS]].tolist() for c in ids])
        for start in range(0, len(rows), ID_BLOCK_ROWS)
    )
    return itertools.chain.from_iterable(blocks)


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
            # "auto": --preset auto's choice (the winner, every candidate's score and gain)
            **{
                k: metadata[k]
                for k in (*calibration.METADATA_KEYS, "baselines", "auto")
                if k in metadata
            },
        }
        write_text(metrics_out, json.dumps(doc, indent=2, allow_nan=False) + "\n", "--metrics-out")
        written.append(metrics_out)
    if history_out is not None:
        metric_name = fitting.epoch_metric(outcome.prepared.task.task)[0]
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
