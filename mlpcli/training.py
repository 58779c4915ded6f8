"""The training loop: shuffled mini-batches, validation, early stopping, events to a callback.

It never prints. After every epoch it hands an `EpochRecord` to the caller's callback and keeps it
in the history. The best epoch's weights are restored however training ends (patience, epoch
limit, divergence or interruption), and the whole loop state can be saved and resumed
bit-identically (`Trainer.state_dict`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from mlpcli.errors import DivergenceError, UsageError
from mlpcli.nn.network import MLP
from mlpcli.nn.recipe import RecipeConfig, RecipeNet, resolve_member_batches

Array = NDArray[np.floating]
Metric = Callable[[np.ndarray, np.ndarray], float]

STOP_REASONS = ("patience", "epoch_limit", "diverged", "interrupted")
TIES = ("earlier", "later")
#: The history's gradient norms average at most about this many batches an epoch: beyond it,
#: every k-th batch's (one read of every gradient and three calls a batch, 2 to 3% of a
#: batch-32 step; --clip-norm needs every batch's and gets them).
NORM_SAMPLES = 256


@dataclass
class EpochRecord:
    """What one epoch did; the history is a list of these."""

    epoch: int
    train_loss: float
    val_loss: float | None
    val_metric: float | None
    lr: float
    #: Per layer, the mean gradient norm over the epoch's batches (over every k-th batch, an
    #: estimate, when an epoch has more than `NORM_SAMPLES` of them).
    grad_norms: list[float]
    seconds: float
    improved: bool
    best_epoch: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitOptions:
    epochs: int = 200
    batch_size: int | None = 32  # None: the full batch
    patience: int | None = 20  # None: no early stopping
    min_delta: float = 0.0
    monitor: str = "val_loss"  # val_loss | val_metric | train_loss
    clip_norm: float | None = None
    metric_name: str = "metric"
    metric_greater_is_better: bool = True
    #: Which epoch wins a tie of the monitored value: "earlier" (default) or "later". RealMLP-TD
    #: picks its best epoch on the validation error with ties to the later epoch, which on a
    #: small validation set (few distinct error values) favours the better-annealed weights.
    ties: str = "earlier"


@dataclass
class FitResult:
    history: list[EpochRecord]
    best_epoch: int
    best_value: float | None
    monitor: str
    stop_reason: str
    seconds: float
    layer_names: list[str] = field(default_factory=list)
    #: Rows per optimizer step actually used (`--batch-size auto` or `full` resolved).
    batch_size: int | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def best_record(self) -> EpochRecord | None:
        return next((r for r in self.history if r.epoch == self.best_epoch), None)


class Trainer:
    """Trains one network with one optimizer; `fit` may be called again to resume."""

    def __init__(
        self,
        net: MLP,
        optimizer: Any,
        options: FitOptions,
        rng: np.random.Generator,
        schedule: Any | None = None,
        metric: Metric | None = None,
        step_hook: Callable[[int, int], None] | None = None,
    ) -> None:
        if options.ties not in TIES:
            raise UsageError(
                f"Unknown tie rule '{options.ties}'; choose one of: {', '.join(TIES)}."
            )
        self.net, self.optimizer, self.options = net, optimizer, options
        self.rng, self.schedule, self.metric = rng, schedule, metric
        #: Called as step_hook(steps taken, total steps) before every batch's forward pass, so
        #: per-step schedules (learning rate, dropout, weight decay) can set their values.
        self.step_hook = step_hook
        self.steps = 0
        self.history: list[EpochRecord] = []
        self.best_epoch = 0
        self.best_value: float | None = None
        self.wait = 0
        self.seconds = 0.0
        self.batch_size: int | None = None
        self._best_params = net.flat_params.copy()
        self._best_buffers = self._buffers_copy()
        if optimizer.name == "adamw":
            optimizer.decay_masks = [net.flat_decay_mask()]

    # ----------------------------------------------------------------- state
    def _buffers_copy(self) -> list[Array]:
        return [
            a.copy()
            for bn in self.net.batchnorm_layers()
            for a in (bn.running_mean, bn.running_var)
        ]

    def _snapshot_best(self) -> None:
        np.copyto(self._best_params, self.net.flat_params)
        self._best_buffers = self._buffers_copy()

    def restore_best(self) -> None:
        np.copyto(self.net.flat_params, self._best_params)
        arrays = iter(self._best_buffers)
        for bn in self.net.batchnorm_layers():
            bn.running_mean[...] = next(arrays)
            bn.running_var[...] = next(arrays)

    def best_state_arrays(self) -> dict[str, Array]:
        """`net.state_arrays()` of the best epoch's weights, leaving the network as it is."""
        current, buffers = self.net.flat_params.copy(), self._buffers_copy()
        self.restore_best()
        best = self.net.state_arrays()
        np.copyto(self.net.flat_params, current)
        arrays = iter(buffers)
        for bn in self.net.batchnorm_layers():
            bn.running_mean[...] = next(arrays)
            bn.running_var[...] = next(arrays)
        return best

    def partial_result(self) -> FitResult:
        """The result so far, for checkpoints written while training runs."""
        return self._result("running")

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able state and arrays: enough to resume exactly where training stopped."""
        meta: dict[str, Any] = {
            "history": [r.to_dict() for r in self.history],
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "wait": self.wait,
            "seconds": self.seconds,
            "rng": self.rng.bit_generator.state,
            "lr": self.optimizer.lr,
        }
        if self.step_hook is not None:  # only then: checkpoints of plain runs stay as they were
            meta["steps"] = self.steps
        arrays: dict[str, np.ndarray] = {f"net.{k}": v for k, v in self.net.state_arrays().items()}
        arrays["trainer.best_params"] = self._best_params.copy()
        for i, a in enumerate(self._best_buffers):
            arrays[f"trainer.best_buffer.{i}"] = a.copy()
        opt_state = self.optimizer.state_dict()
        meta["optimizer"] = _split_state(opt_state, arrays, "optimizer.")
        if self.schedule is not None:
            meta["schedule"] = _split_state(self.schedule.state_dict(), arrays, "schedule.")
        return meta, arrays

    def load_state_dict(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.history = [EpochRecord(**r) for r in meta["history"]]
        self.best_epoch, self.best_value = meta["best_epoch"], meta["best_value"]
        self.wait, self.seconds = meta["wait"], meta["seconds"]
        self.steps = int(meta.get("steps", 0))
        self.rng.bit_generator.state = meta["rng"]
        self.net.load_state_arrays(
            {k[len("net.") :]: v for k, v in arrays.items() if k.startswith("net.")}
        )
        np.copyto(self._best_params, arrays["trainer.best_params"])
        n = len(self._best_buffers)
        self._best_buffers = [np.array(arrays[f"trainer.best_buffer.{i}"]) for i in range(n)]
        self.optimizer.load_state_dict(_join_state(meta["optimizer"], arrays, "optimizer."))
        self.optimizer.lr = meta["lr"]
        if self.schedule is not None and "schedule" in meta:
            self.schedule.load_state_dict(_join_state(meta["schedule"], arrays, "schedule."))

    # ----------------------------------------------------------------- the loop
    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        X_val: np.ndarray | None = None,
        Y_val: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        callback: Callable[[EpochRecord], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        batches: Any | None = None,
    ) -> FitResult:
        """Train until patience, the epoch limit, divergence (raises) or `should_stop()`.

        `batches` replaces the in-memory sampler over (X, Y, sample_weight), which are then
        unused: an object with `n_rows`, `n_batches` and `epoch(rng)` yielding (Xb, Yb, wb),
        such as `sampling.BlockBatches` over a table on disk (out-of-core training).
        """
        net, opts = self.net, self.options
        if batches is None:
            X = np.ascontiguousarray(X, dtype=net.dtype)
            Y = np.ascontiguousarray(Y, dtype=net.dtype)
        n = X.shape[0] if batches is None else batches.n_rows
        has_val = X_val is not None and Y_val is not None and len(X_val) > 0
        if opts.monitor != "train_loss" and not has_val:
            raise UsageError(
                f"--monitor {opts.monitor} needs a validation set; use --monitor train_loss "
                "or a --valid-fraction above 0."
            )
        if opts.monitor == "val_metric" and self.metric is None:
            raise UsageError("--monitor val_metric needs a validation metric for this task.")
        batch = n if opts.batch_size is None else min(opts.batch_size, n)
        self.batch_size = batch
        if getattr(self.optimizer, "full_batch_only", False) and batch < n:
            raise UsageError(
                f"--optimizer {self.optimizer.name} is a full-batch method (it does not work "
                f"with mini-batches); use --batch-size full instead of {opts.batch_size}."
            )
        if batches is None:
            weights = None if sample_weight is None else np.asarray(sample_weight, net.dtype)
            # Batch normalisation cannot learn from a batch of one sample: its variance is zero.
            drop_single = bool(net.batchnorm_layers())
            batches = _Batches(X, Y, weights, batch, drop_single)
        flat_params, flat_grads = net.flat_params, net.flat_grads
        # Hoisted out of the batch loop: per batch it runs one forward/backward, one dot
        # product per layer (the gradient norms) and one optimizer step, and little else.
        grad_views = [flat_grads[s] for s in net.layer_slices]
        params_list, grads_list = [flat_params], [flat_grads]
        backprop, step, rng = net._backprop, self.optimizer.step, self.rng
        clip_norm = opts.clip_norm
        step_hook = self.step_hook
        total_steps = opts.epochs * batches.n_batches
        every = 1 if clip_norm is not None else max(1, batches.n_batches // NORM_SAMPLES)
        dot, sqrt, isfinite = np.dot, math.sqrt, math.isfinite
        stop_reason = "epoch_limit"
        started = time.perf_counter() - self.seconds
        # Overflow shows up as a non-finite loss or weight, reported as divergence below.
        errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
        try:
            errstate.__enter__()
            while len(self.history) < opts.epochs:
                epoch = len(self.history) + 1
                loss_sum = 0.0
                norm_sums = [0.0] * len(grad_views)
                n_seen = n_norms = 0
                interrupted = False
                for b, (Xb, Yb, wb) in enumerate(batches.epoch(rng)):
                    if step_hook is not None:
                        step_hook(self.steps, total_steps)
                    loss = backprop(Xb, Yb, wb, True, rng)
                    if not isfinite(loss):
                        self._diverged(epoch, f"the training loss became {loss}")
                    m = len(Xb)
                    loss_sum += loss * m
                    n_seen += m
                    if b % every == 0:
                        squares = [float(dot(g, g)) for g in grad_views]
                        for j, square in enumerate(squares):
                            norm_sums[j] += sqrt(square)
                        n_norms += 1
                        if clip_norm is not None:
                            total = sqrt(sum(squares))
                            if total > clip_norm:
                                flat_grads *= clip_norm / total
                    step(params_list, grads_list)
                    self.steps += 1
                    if should_stop is not None and should_stop():
                        interrupted = True
                        break
                if interrupted:
                    stop_reason = "interrupted"
                    break
                if not np.isfinite(flat_params).all():
                    self._diverged(epoch, "the weights became non-finite")
                record = self._end_epoch(
                    epoch,
                    loss_sum / n_seen,
                    X_val if has_val else None,
                    Y_val,
                    np.array(norm_sums) / n_norms,
                    time.perf_counter() - started,
                )
                self.history.append(record)
                self.seconds = record.seconds
                if callback is not None:
                    callback(record)
                if opts.patience is not None and self.wait >= opts.patience:
                    stop_reason = "patience"
                    break
        except KeyboardInterrupt:
            stop_reason = "interrupted"
        finally:
            errstate.__exit__(None, None, None)
        self.seconds = time.perf_counter() - started
        self.restore_best()
        return self._result(stop_reason)

    def _end_epoch(
        self,
        epoch: int,
        train_loss: float,
        X_val: np.ndarray | None,
        Y_val: np.ndarray | None,
        grad_norms: NDArray[np.float64],
        seconds: float,
    ) -> EpochRecord:
        val_loss = val_metric = None
        if X_val is not None and Y_val is not None:
            val_loss, P = evaluate_loss(self.net, X_val, Y_val)
            if not math.isfinite(val_loss):
                self._diverged(epoch, f"the validation loss became {val_loss}")
            if self.metric is not None:
                val_metric = float(self.metric(Y_val, P))
                if not math.isfinite(val_metric):  # undefined, e.g. R^2 of one sample
                    val_metric = None
        value = {"val_loss": val_loss, "val_metric": val_metric, "train_loss": train_loss}[
            self.options.monitor
        ]
        improved = value is not None and self._improves(value)
        if improved:
            self.best_value, self.best_epoch, self.wait = value, epoch, 0
            self._snapshot_best()
        else:
            self.wait += 1
        lr = float(self.optimizer.lr)
        if self.schedule is not None:
            self.optimizer.lr = self.schedule.lr(
                epoch - 1, val_loss if val_loss is not None else train_loss
            )
        return EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            val_metric=val_metric,
            lr=lr,
            grad_norms=[float(g) for g in grad_norms],
            seconds=seconds,
            improved=improved,
            best_epoch=self.best_epoch,
        )

    def _improves(self, value: float) -> bool:
        if self.best_value is None:
            return True
        greater = self.options.monitor == "val_metric" and self.options.metric_greater_is_better
        gain = value - self.best_value if greater else self.best_value - value
        if self.options.ties == "later":
            return gain >= self.options.min_delta
        return gain > self.options.min_delta

    def _diverged(self, epoch: int, what: str) -> None:
        self.restore_best()
        error = DivergenceError(
            f"Training diverged in epoch {epoch}: {what}. Lower the learning rate "
            f"(--lr, now {self.optimizer.lr:g}), normalise the inputs (--scale standard) "
            "or clip gradients (--clip-norm 1)."
        )
        error.result = self._result("diverged")  # type: ignore[attr-defined]
        raise error

    def _result(self, stop_reason: str) -> FitResult:
        return FitResult(
            history=list(self.history),
            best_epoch=self.best_epoch,
            best_value=self.best_value,
            monitor=self.options.monitor,
            stop_reason=stop_reason,
            seconds=self.seconds,
            layer_names=self.net.layer_names,
            batch_size=self.batch_size,
        )


class _Batches:
    """Shuffled mini-batches gathered into reused buffers (no copy of the data per epoch)."""

    def __init__(
        self, X: Array, Y: Array, w: Array | None, batch_size: int, drop_single: bool = False
    ) -> None:
        self.X, self.Y, self.w, self.batch_size = X, Y, w, batch_size
        self.drop_single = drop_single
        self.full = batch_size >= X.shape[0]
        n = X.shape[0]
        #: Optimizer steps per epoch (a last batch of one is dropped with drop_single).
        self.n_batches = (
            1 if self.full else -(-n // batch_size) - int(drop_single and n % batch_size == 1)
        )
        if not self.full:
            self._X = np.empty((batch_size, X.shape[1]), dtype=X.dtype)
            self._Y = np.empty((batch_size, Y.shape[1]), dtype=Y.dtype)
            self._w = None if w is None else np.empty((batch_size, *w.shape[1:]), dtype=w.dtype)

    def epoch(self, rng: np.random.Generator):  # type: ignore[no-untyped-def]
        if self.full:
            # Full-batch methods see the same data every step; shuffling would change nothing.
            yield self.X, self.Y, self.w
            return
        n = self.X.shape[0]
        order = rng.permutation(n)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            m = len(idx)
            if m == 1 and self.drop_single:
                return
            Xb = self.X.take(idx, axis=0, out=self._X[:m])
            Yb = self.Y.take(idx, axis=0, out=self._Y[:m])
            wb = (
                None
                if self._w is None or self.w is None
                else self.w.take(idx, axis=0, out=self._w[:m])
            )
            yield Xb, Yb, wb


def evaluate_loss(
    net: MLP, X: np.ndarray, Y: np.ndarray, batch_size: int = 65536
) -> tuple[float, Array]:
    """Inference-mode mean loss and outputs, computed in batches to bound memory.

    A network with its own `evaluate` (an ensemble: the loss of its mean output) answers itself.
    `X` may be rows on disk (`sampling.RowFile`): each batch is read as it is needed.
    """
    if hasattr(net, "evaluate"):
        return net.evaluate(X, Y)  # type: ignore[no-any-return]
    Y = np.asarray(Y, dtype=net.dtype)
    P = np.empty((X.shape[0], net.architecture.n_outputs), dtype=net.dtype)
    total = 0.0
    for rows in net.inference_blocks(X.shape[0], batch_size):
        Z = net._logits(np.asarray(X[rows], dtype=net.dtype), False, None)
        loss, _ = net.loss_fn(Y[rows], Z, net.output_activation)
        total += loss * len(Z)
        net.output_activation.forward(Z, out=P[rows])
    return total / X.shape[0], P


def _split_state(
    state: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str
) -> dict[str, Any]:
    """Move the arrays of an optimizer/schedule state into `arrays`, keeping JSON-able rest."""
    meta: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            arrays[prefix + key] = value
            meta[key] = {"__array__": prefix + key}
        elif isinstance(value, dict):
            meta[key] = _split_state(value, arrays, f"{prefix}{key}.")
        elif isinstance(value, list | tuple) and any(isinstance(v, np.ndarray) for v in value):
            names = []
            for i, v in enumerate(value):
                arrays[f"{prefix}{key}.{i}"] = v
                names.append({"__array__": f"{prefix}{key}.{i}"})
            meta[key] = names
        else:
            meta[key] = value
    return meta


def _join_state(meta: Any, arrays: dict[str, np.ndarray], prefix: str) -> Any:
    if isinstance(meta, dict):
        if set(meta) == {"__array__"}:
            return np.array(arrays[meta["__array__"]])
        return {k: _join_state(v, arrays, prefix) for k, v in meta.items()}
    if isinstance(meta, list):
        return [_join_state(v, arrays, prefix) for v in meta]
    return meta


def fit(
    net: MLP,
    X: np.ndarray,
    Y: np.ndarray,
    X_val: np.ndarray | None = None,
    Y_val: np.ndarray | None = None,
    *,
    optimizer: str = "adam",
    lr: float | None = None,
    seed: int | np.random.Generator = 0,
    sample_weight: np.ndarray | None = None,
    callback: Callable[[EpochRecord], None] | None = None,
    metric: Metric | None = None,
    **options: Any,
) -> FitResult:
    """Train `net` in one call: the optimizer by name, `FitOptions` fields as keywords.

    Without validation data early stopping watches the training loss.
    """
    from mlpcli import optimizers

    if X_val is None and "monitor" not in options:
        options["monitor"] = "train_loss"
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    trainer = Trainer(
        net, optimizers.get(optimizer, lr=lr), FitOptions(**options), rng, metric=metric
    )
    return trainer.fit(X, Y, X_val, Y_val, sample_weight, callback=callback)


class RecipeSchedules:
    """The recipe's per-step schedules, as a `Trainer` step hook: at progress t,
    lr = lr0 f_lr(t), dropout = p0 f_p(t) and weight decay = wd0 f_wd(t)."""

    def __init__(self, net: RecipeNet, optimizer: Any, config: RecipeConfig) -> None:
        from mlpcli import schedules

        self.net, self.optimizer, self.config = net, optimizer, config
        self.lr = schedules.get_progress(config.lr_schedule)
        self.dropout = schedules.get_progress(config.dropout_schedule)
        self.weight_decay = schedules.get_progress(config.weight_decay_schedule)
        self.progress = schedules.ProgressSchedule.progress

    def __call__(self, step: int, total_steps: int) -> None:
        t = self.progress(step, total_steps)
        c = self.config
        self.optimizer.lr = c.lr * self.lr(t)
        self.optimizer.weight_decay = c.weight_decay * self.weight_decay(t)
        self.net.set_dropout(c.dropout * self.dropout(t))


def recipe_trainer(
    net: RecipeNet,
    options: FitOptions,
    rng: np.random.Generator,
    metric: Metric | None = None,
    **adam: float,
) -> Trainer:
    """A `Trainer` for an initialised `RecipeNet`: AdamW with the parameter groups' lr factors
    and the recipe's per-step lr/dropout/decay schedules (`adam`: e.g. beta1, eps)."""
    from mlpcli import optimizers

    c = net.config
    optimizer = optimizers.get("adamw", lr=c.lr, beta2=c.beta2, weight_decay=c.weight_decay, **adam)
    optimizer.lr_factors = [net.flat_lr_factors()]
    # RecipeNet has what the trainer uses of a network (flat buffers, _backprop, evaluate...).
    return Trainer(
        cast(MLP, net), optimizer, options, rng, metric=metric,
        step_hook=RecipeSchedules(net, optimizer, c),
    )  # fmt: skip


def fit_recipe(
    X: np.ndarray,
    Y: np.ndarray,
    X_val: np.ndarray | None = None,
    Y_val: np.ndarray | None = None,
    *,
    loss: str,
    config: RecipeConfig | None = None,
    numeric: list[int] | None = None,
    seed: int | np.random.Generator = 0,
    metric: Metric | None = None,
    metric_greater_is_better: bool = True,
    callback: Callable[[EpochRecord], None] | None = None,
    dtype: str = "float32",
) -> tuple[RecipeNet, FitResult]:
    """Build, initialise from X and train a `RecipeNet` the way RealMLP-TD trains.

    AdamW with the parameter groups' lr factors, the per-step lr/dropout/decay schedules, all
    epochs (no early stopping) and the best epoch on the validation metric (e.g. accuracy, that
    is the error) with ties to the later epoch; without validation rows, the last epoch's weights
    under the training loss' tie rule. `numeric` lists the numeric input columns (embedded);
    None embeds all.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    X = np.asarray(X)
    Y = np.asarray(Y)
    config = resolve_member_batches(config or RecipeConfig(), len(X))
    net = RecipeNet(X.shape[1], Y.shape[1], loss, config, numeric, dtype, seed=rng)
    net.initialise(X)
    has_val = X_val is not None and Y_val is not None and len(X_val) > 0
    monitor = "train_loss" if not has_val else "val_metric" if metric else "val_loss"
    options = FitOptions(
        epochs=config.epochs,
        batch_size=net.trainer_batch_size(),
        patience=None,
        monitor=monitor,
        metric_greater_is_better=metric_greater_is_better,
        ties="later",
    )
    trainer = recipe_trainer(net, options, rng, metric)
    result = trainer.fit(X, Y, X_val, Y_val, callback=callback)
    return net, result
