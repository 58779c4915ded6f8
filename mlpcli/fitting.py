"""From settings and prepared arrays to a fitted network: build the network, optimizer,
schedule and loop options (`make_trainer`), then run the loop (`fit_model`).

Shared by `pipeline` (train), `crossval`, `tuning` and `baselines`; below all of them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mlpcli import auto, optimizers, presets, schedules
from mlpcli import task as tasks
from mlpcli.config import FULL_BATCH_OPTIMIZERS, Settings
from mlpcli.errors import UsageError
from mlpcli.limits import check_memory, network_bytes
from mlpcli.nn.network import MLP, Architecture
from mlpcli.prepare import PreparedData
from mlpcli.training import EpochRecord, FitOptions, FitResult, Trainer

LOG = logging.getLogger("mlpcli")


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


def make_trainer(settings: Settings, prepared: PreparedData, rng: np.random.Generator) -> Trainer:
    """The network, optimizer, schedule and loop options for prepared data."""
    if settings.model.ensemble_groups > 1:
        raise UsageError(
            "--ensemble-groups applies to `mlpcli train`; cv and tune spread their folds and "
            "candidates instead. Leave it out here."
        )
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
    """Train on prepared arrays (with a fresh trainer, or a given one, e.g. resumed);
    `--preset auto` trains its candidates and returns the better (`auto.fit`)."""
    if trainer is None and auto.is_auto(settings):
        return auto.fit(settings, prepared, rng, fit_model, callback, should_stop)
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
