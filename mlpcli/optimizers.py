"""Optimizers: the lecture's update rules, applied in place to a list of parameter arrays.

W is a parameter array, g its gradient, lr the learning rate, t the step count (1 at the first
step); M and V are per-weight state, D a per-weight step size.

    gd        W <- W - lr*g                                  (full batch only)
    sgd       W <- W - lr*g                                  (the trainer picks the batch size)
    momentum  M <- beta*M + g;  W <- W - lr*M
    nesterov  M <- beta*M + g;  W <- W - lr*(g + beta*M)
    rmsprop   V <- beta*V + (1-beta)*g^2;  W <- W - lr*g/(sqrt(V) + eps)
    adam      M <- beta1*M + (1-beta1)*g;  V <- beta2*V + (1-beta2)*g^2;
              W <- W - lr*(M/(1-beta1^t)) / (sqrt(V/(1-beta2^t)) + eps)
    adamw     W <- W - lr*wd*W where the decay mask is nonzero, then the adam step

Parameter groups (adam, adamw): with `lr_factors` set, parameter i steps with lr*f_i in place of
lr, decay included (RealMLP-TD trains its scaling layer at 6 lr, biases at 0.1 lr; pytabkit's
`OptimizerBase.step`). f_i is a float or an array broadcastable to parameter i (one factor per
weight of a flat buffer). None, the default, leaves every step bit-identical to the rule above.
    rprop     iRprop-: if g*g' > 0: D <- min(eta+*D, D_max);  if g*g' < 0: D <- max(eta-*D, D_min)
              and g <- 0;  W <- W - sign(g)*D;  g' <- g      (full batch only)

One optimizer object serves the whole network. Its state is kept in lists aligned by index with
the parameters (scikit-learn's `_stochastic_optimizers.py`), allocated at the first step in the
parameters' dtype. Every update is a handful of ufunc calls with `out=` into preallocated
scratch, so over the network's single flat buffer Adam costs about a dozen passes and no
allocation (PERF_NOTES.md). Scalars are Python floats: NumPy treats them as weak, so they
never upcast float32 arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import numpy as np
from numpy.typing import NDArray

from mlpcli.errors import ModelFileError, UsageError, choose
from mlpcli.option_parsers import Parser, flag, number

Array = NDArray[np.floating]

_POSITIVE = number(float, 0.0, low_inclusive=False)
_NON_NEGATIVE = number(float, 0.0)
_DECAY_RATE = number(float, 0.0, 1.0, high_inclusive=False)

#: hyperparameter -> (its option name as config.py spells it, the parser that checks a value)
PARSERS: dict[str, tuple[str, Parser]] = {
    "lr": ("lr", _POSITIVE),
    "momentum": ("momentum", _DECAY_RATE),
    "beta1": ("beta1", _DECAY_RATE),
    "beta2": ("beta2", _DECAY_RATE),
    "eps": ("eps", _POSITIVE),
    "weight_decay": ("weight_decay", _NON_NEGATIVE),
    "eta_plus": ("eta_plus", number(float, 1.0, low_inclusive=False)),
    "eta_minus": ("eta_minus", number(float, 0.0, 1.0, low_inclusive=False, high_inclusive=False)),
    "step_min": ("step_min", _POSITIVE),
    "step_max": ("step_max", _POSITIVE),
}


def resolve_hyperparameters(
    kind: str,
    name: str,
    given: Mapping[str, Any],
    defaults: Mapping[str, float],
    parsers: Mapping[str, tuple[str, Parser]],
) -> dict[str, Any]:
    """`defaults` overridden by `given`, each value checked by its parser.

    A key the owner does not take is a `UsageError` naming its option, never silently ignored:
    `--momentum` with `--optimizer adam` is a mistake the user wants to hear about.
    """
    unknown = [key for key in given if key not in defaults]
    if unknown:
        key = unknown[0]
        option = flag(parsers[key][0] if key in parsers else key)
        takes = ", ".join(flag(parsers[k][0]) for k in defaults) or "no options"
        raise UsageError(f"{option} does not apply to {kind} '{name}'; it takes {takes}.")
    return {
        key: parsers[key][1](parsers[key][0], given.get(key, default))
        for key, default in defaults.items()
    }


class Optimizer:
    """Base class: `step(params, grads)` updates `params` in place.

    `lr` may be changed between steps (schedules do). Subclasses list their hyperparameters with
    defaults in `HYPERPARAMETERS` (set as attributes) and their per-weight state in `STATE`.
    """

    name: ClassVar[str]
    default_lr: ClassVar[float]
    #: True when the rule is only sound on the full batch; the trainer refuses mini-batches.
    full_batch_only: ClassVar[bool] = False
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {}
    STATE: ClassVar[tuple[str, ...]] = ()

    def __init__(self, lr: float | None = None, **hyper: float) -> None:
        given = dict(hyper) if lr is None else {"lr": lr, **hyper}
        defaults = {"lr": self.default_lr, **self.HYPERPARAMETERS}
        values = resolve_hyperparameters("optimizer", self.name, given, defaults, PARSERS)
        self.lr: float = values.pop("lr")
        self._lr0 = self.lr
        for key, value in values.items():
            setattr(self, key, value)
        self._check()
        #: Per parameter: where decoupled weight decay applies; only adamw reads it.
        self.decay_masks: Sequence[float | Array] | None = None
        #: Per parameter: a learning-rate factor (parameter groups); adam and adamw read it.
        self.lr_factors: Sequence[float | Array] | None = None
        self.t = 0
        self.state: dict[str, list[Array]] = {key: [] for key in self.STATE}
        self._scratch: list[Array] = []
        self._n_params: int | None = None

    def _check(self) -> None:
        """Checks that involve several hyperparameters."""

    def hyperparameters(self) -> dict[str, float]:
        """The constructor's values (initial lr included): `get(name, **h)` rebuilds this."""
        return {"lr": self._lr0, **{key: getattr(self, key) for key in self.HYPERPARAMETERS}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- stepping
    def step(self, params: Sequence[Array], grads: Sequence[Array]) -> None:
        """One update of every array in `params` from the aligned `grads`, in place."""
        if len(grads) != len(params):
            raise ValueError(
                f"step() got {len(params)} parameter arrays but {len(grads)} gradients"
            )
        if self._n_params is None:
            self._allocate(params)
        elif len(params) != self._n_params:
            raise ValueError(f"step() got {len(params)} parameter arrays, earlier {self._n_params}")
        self.t += 1
        lr = float(self.lr)  # a NumPy float64 lr would upcast float32 arithmetic
        for i, (W, g) in enumerate(zip(params, grads, strict=True)):
            self._update(i, W, g, lr)

    def _update(self, i: int, W: Array, g: Array, lr: float) -> None:
        raise NotImplementedError

    def _initial_state(self, key: str, W: Array) -> Array:
        return np.zeros_like(W)

    def _allocate(self, params: Sequence[Array]) -> None:
        """State at the first step: fresh, or adopted from `load_state_dict` after checks."""
        for key in self.STATE:
            loaded = self.state[key]
            if not loaded:
                self.state[key] = [self._initial_state(key, W) for W in params]
                continue
            if len(loaded) != len(params):
                raise ModelFileError(
                    f"The saved optimizer state holds {len(loaded)} '{key}' arrays for "
                    f"{len(params)} parameter arrays; resume with the same network options."
                )
            for j, (a, W) in enumerate(zip(loaded, params, strict=True)):
                if a.shape != W.shape:
                    raise ModelFileError(
                        f"The saved optimizer state '{key}.{j}' has shape {a.shape}, the "
                        f"parameter {W.shape}; resume with the same network options."
                    )
                loaded[j] = a.astype(W.dtype, copy=False)
        self._scratch = [np.empty_like(W) for W in params]
        self._n_params = len(params)

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """{"optimizer": name, "scalars": {"t", "lr"}, "arrays": {"m.0": copy, ...}}."""
        arrays = {
            f"{key}.{i}": a.copy() for key, state in self.state.items() for i, a in enumerate(state)
        }
        scalars = {"t": self.t, "lr": float(self.lr)}
        return {"optimizer": self.name, "scalars": scalars, "arrays": arrays}

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        """Continue from `state_dict()`: the next steps equal those never interrupted."""
        if d.get("optimizer") != self.name:
            raise UsageError(
                f"The checkpoint was trained with --optimizer {d.get('optimizer')}, not "
                f"{self.name}; resume with --optimizer {d.get('optimizer')}."
            )
        try:
            t, lr = int(d["scalars"]["t"]), float(d["scalars"]["lr"])
            arrays = dict(d["arrays"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"The saved optimizer state is incomplete: {exc!r}.") from None
        n = len(arrays) // len(self.STATE) if self.STATE else 0
        expected = {f"{key}.{i}" for key in self.STATE for i in range(n)}
        if set(arrays) != expected or (self.STATE and (t > 0) != (n > 0)):
            raise ModelFileError(
                f"The saved optimizer state of '{self.name}' after {t} steps holds arrays "
                f"{sorted(arrays)}; expected {len(self.STATE)} per parameter "
                f"({', '.join(self.STATE) or 'none'})."
            )
        self.t, self.lr = t, lr
        self.state = {key: [np.array(arrays[f"{key}.{i}"]) for i in range(n)] for key in self.STATE}
        self._n_params = None  # shapes and dtypes are checked against the params at next step


class GD(Optimizer):
    """Full-batch gradient descent: W <- W - lr*g."""

    name = "gd"
    default_lr = 0.1
    full_batch_only = True

    def _update(self, i: int, W: Array, g: Array, lr: float) -> None:
        tmp = self._scratch[i]
        np.multiply(g, lr, out=tmp)
        W -= tmp


class SGD(GD):
    """Stochastic / mini-batch gradient descent: W <- W - lr*g; the trainer picks the batch."""

    name = "sgd"
    default_lr = 0.01
    full_batch_only = False


class Momentum(Optimizer):
    """Heavy-ball momentum: M <- beta*M + g, W <- W - lr*M (beta = --momentum)."""

    name = "momentum"
    default_lr = 0.01
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {"momentum": 0.9}
    STATE = ("m",)
    momentum: float

    def _update(self, i: int, W: Array, g: Array, lr: float) -> None:
        M, tmp = self.state["m"][i], self._scratch[i]
        M *= self.momentum
        M += g
        np.multiply(M, lr, out=tmp)
        W -= tmp


class Nesterov(Momentum):
    """Nesterov momentum: M <- beta*M + g, W <- W - lr*(g + beta*M) (beta = --momentum)."""

    name = "nesterov"

    def _update(self, i: int, W: Array, g: Array, lr: float) -> None:
        M, tmp = self.state["m"][i], self._scratch[i]
        M *= self.momentum
        M += g
        np.multiply(M, self.momentum, out=tmp)
        tmp += g
        tmp *= lr
        W -= tmp


class RMSprop(Optimizer):
    """RMSprop: V <- beta*V + (1-beta)*g^2, W <- W - lr*g/(sqrt(V) + eps) (beta = --momentum)."""

    name = "rmsprop"
    default_lr = 0.001
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {"momentum": 0.9, "eps": 1e-8}
    STATE = ("v",)
    momentum: float
    eps: float

    def _update(self, i: int, W: Array, g: Array, lr: float) -> None:
        V, tmp = self.state["v"][i], self._scratch[i]
        V *= self.momentum
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.momentum
        V += tmp
        np.sqrt(V, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        W -= tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), bias-corrected:

    M <- beta1*M + (1-beta1)*g,  V <- beta2*V + (1-beta2)*g^2,
    W <- W - lr*(M/(1-beta1^t)) / (sqrt(V/(1-beta2^t)) + eps).
    """

    name = "adam"
    default_lr = 0.001
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    STATE = ("m", "v")
    beta1: float
    beta2: float
    eps: float

    def _update(self, i: int, W: Array, g: Array, lr: float) -> None:
        M, V, tmp = self.state["m"][i], self.state["v"][i], self._scratch[i]
        b1, b2 = self.beta1, self.beta2
        M *= b1
        np.multiply(g, 1.0 - b1, out=tmp)
        M += tmp
        V *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        V += tmp
        # The same rule with both bias corrections folded into two scalars (Kingma & Ba, end of
        # section 2), which saves two passes over the buffer:
        # W <- W - lr*c2/(1-beta1^t) * M/(sqrt(V) + eps*c2), with c2 = sqrt(1-beta2^t).
        c2 = math.sqrt(1.0 - b2**self.t)
        np.sqrt(V, out=tmp)
        tmp += self.eps * c2
        np.divide(M, tmp, out=tmp)
        tmp *= lr * c2 / (1.0 - b1**self.t)
        if self.lr_factors is not None:
            tmp *= self.lr_factors[i]
        W -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019):

    W <- W - lr*wd*W where `decay_masks` is nonzero (wd = --weight-decay), then the Adam step.

    `decay_masks` is aligned with the params: a float or an array broadcastable to each one
    (None decays everything), so biases and batch-norm parameters can be left alone.
    """

    name = "adamw"
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {**Adam.HYPERPARAMETERS, "weight_decay": 0.01}
    weight_decay: float
    #: (the lr_factors they came from, per parameter: masked factors and a reused buffer)
    _groups: tuple[Sequence[float | Array], dict[int, tuple[Array, Array]]] | None = None

    @property  # type: ignore[override]
    def decay_masks(self) -> list[bool | NDArray[np.bool_]] | None:
        return self._decay_masks

    @decay_masks.setter
    def decay_masks(self, masks: Sequence[float | Array] | None) -> None:
        self._decay_masks = None if masks is None else [self._as_bool(m) for m in masks]
        self._factors: dict[int, Array] = {}
        self._factors_lr: tuple[float, float] | None = None

    @staticmethod
    def _as_bool(mask: float | Array) -> bool | NDArray[np.bool_]:
        return bool(mask != 0) if np.ndim(mask) == 0 else np.not_equal(mask, 0)

    def _update(self, i: int, W: Array, g: Array, lr: float) -> None:
        masks = self._decay_masks
        if masks is not None and len(masks) != self._n_params:
            raise ValueError(f"{len(masks)} decay masks for {self._n_params} parameter arrays")
        # Decay first, so the decay term uses the W of the previous step, as the rule says.
        mask = True if masks is None else masks[i]
        if self.lr_factors is not None and mask is not False:
            W *= self._factor(i, np.broadcast_to(mask, W.shape), W.dtype, lr)
        elif mask is True:
            W *= 1.0 - lr * self.weight_decay
        elif mask is not False:
            W *= self._factor(i, mask, W.dtype, lr)
        super()._update(i, W, g, lr)

    def _factor(self, i: int, mask: NDArray[np.bool_], dtype: np.dtype, lr: float) -> Array:
        """1 - lr*wd where the mask is set, else 1, rebuilt only when lr changes (once an epoch):
        one plain multiply per step, where a masked `where=` multiply took 1.5x the time of the
        whole Adam step on a flat buffer. With `lr_factors`, 1 - lr*f_i*wd where the mask is set.
        Rebuilt when lr or wd changes (a per-step schedule rebuilds it every step)."""
        if self.lr_factors is not None:
            return self._grouped_factor(i, mask, dtype, lr)
        key = (lr, self.weight_decay)
        if self._factors_lr != key:
            self._factors, self._factors_lr = {}, key
        if i not in self._factors:
            factor = np.ones(np.shape(mask), dtype=dtype)
            np.copyto(factor, 1.0 - lr * self.weight_decay, where=mask)
            self._factors[i] = factor
        return self._factors[i]

    def _grouped_factor(self, i: int, mask: NDArray[np.bool_], dtype: np.dtype, lr: float) -> Array:
        """1 - (lr*wd)*f_i where the mask is set, else 1, in two passes over a reused buffer:
        f_i masked to 0 is kept, since 1 - (lr*wd)*0 is exactly 1. The recipe's per-step
        schedules change lr every step, where rebuilding with `where=` allocated each time."""
        assert self.lr_factors is not None
        groups = self._groups
        if groups is None or groups[0] is not self.lr_factors:
            groups = self._groups = (self.lr_factors, {})
        if i not in groups[1]:
            scaled = np.broadcast_to(np.asarray(self.lr_factors[i], dtype=dtype), np.shape(mask))
            groups[1][i] = (np.where(mask, scaled, 0).astype(dtype), np.empty(scaled.shape, dtype))
        masked, factor = groups[1][i]
        np.multiply(masked, lr * self.weight_decay, out=factor)
        return np.subtract(1.0, factor, out=factor)


class Rprop(Optimizer):
    """iRprop- (Igel & Hüsken 2000): sign steps with per-weight sizes D, starting at D = lr:

    g*g' > 0: D <- min(eta+*D, D_max);  g*g' < 0: D <- max(eta-*D, D_min), g <- 0;
    W <- W - sign(g)*D;  g' <- g.

    Only the gradient's sign is used, so only the full batch gives a meaningful sign pattern.
    `lr` is the initial step size; changing it later (a schedule) has no effect.
    """

    name = "rprop"
    default_lr = 0.01
    full_batch_only = True
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {
        "eta_plus": 1.2,
        "eta_minus": 0.5,
        "step_min": 1e-6,
        "step_max": 50.0,
    }
    #: step: D; sign: sign(g') of the previous step (after the iRprop- reset), which is all the
    #: rule needs from g' and cannot underflow the way the product g*g' can in float32.
    STATE = ("step", "sign")
    eta_plus: float
    eta_minus: float
    step_min: float
    step_max: float

    def _check(self) -> None:
        if self.step_min > self.step_max:
            raise UsageError(
                f"--step-min ({self.step_min:g}) must not exceed --step-max ({self.step_max:g})."
            )
        if not self.step_min <= self.lr <= self.step_max:
            raise UsageError(
                f"--lr is rprop's initial step size and must lie within --step-min and "
                f"--step-max [{self.step_min:g}, {self.step_max:g}]; got {self.lr:g}."
            )

    def _initial_state(self, key: str, W: Array) -> Array:
        return np.full_like(W, self.lr) if key == "step" else np.zeros_like(W)

    def _allocate(self, params: Sequence[Array]) -> None:
        super()._allocate(params)
        self._grow = [np.empty(W.shape, dtype=bool) for W in params]
        self._shrink = [np.empty(W.shape, dtype=bool) for W in params]

    def _update(self, i: int, W: Array, g: Array, lr: float) -> None:
        D, prev, s = self.state["step"][i], self.state["sign"][i], self._scratch[i]
        grow, shrink = self._grow[i], self._shrink[i]
        np.sign(g, out=s)
        np.multiply(prev, s, out=prev)  # sign(g*g'); g' itself is not needed any more
        np.greater(prev, 0, out=grow)
        np.less(prev, 0, out=shrink)
        np.multiply(D, self.eta_plus, out=D, where=grow)
        np.multiply(D, self.eta_minus, out=D, where=shrink)
        np.clip(D, self.step_min, self.step_max, out=D)
        np.copyto(s, 0, where=shrink)  # iRprop-: after a sign change, no step and no memory
        np.copyto(prev, s)
        s *= D
        W -= s


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (GD, SGD, Momentum, Nesterov, RMSprop, Adam, AdamW, Rprop)
}


def get(name: str, lr: float | None = None, **hyper: float) -> Optimizer:
    """The optimizer `name` with learning rate `lr` (None: its default) and hyperparameters."""
    cls = cast(type[Optimizer], choose("optimizer", name, cast(dict[str, object], OPTIMIZERS)))
    return cls(lr, **hyper)
