"""Learning-rate schedules: after each epoch, the learning rate for the next one.

e is the 0-based epoch that has just finished, E the number of epochs, lr0 the initial rate.

    constant  lr = lr0
    step      lr = lr0 * gamma^floor((e+1)/step_size)
    cosine    lr = min_lr + 0.5*(lr0 - min_lr)*(1 + cos(pi*min(e+1, E)/E))
    plateau   lr <- max(factor*lr, min_lr) once `patience` epochs in a row did not improve, where
              an epoch improves when monitor < best - min_delta*|best| (relative, so one setting
              serves losses of any scale); the count restarts after an improvement or a cut

A schedule never raises the rate: plateau's floor is min(min_lr, lr), cosine refuses min_lr > lr0.

Progress schedules (`PROGRESS_SCHEDULES`) are the quality recipe's: a factor of the training
progress t = s / S (s steps done of S), applied at every step to a base value, so one shape serves
the learning rate, dropout and weight decay (pytabkit's `training/scheduling.py`, Holzmüller et al.
2024, "Better by Default"). With the cosine ramp c(u) = (1 - cos(pi u)) / 2, from 0 to 1:

    constant   f = 1
    cosine     f = 1 - c(t)                                                  from 1 to 0
    coslog4    f = (1 - cos(2 pi log2(1 + 15 t))) / 2      4 cycles, each twice as long as the last
    one_cycle  f = 0.04 + 0.96 c(t / 0.25) for t < 0.25, then 1 - (1 - 1e-5) c((t - 0.25) / 0.75)
    flat_cos   f = 1 for t < 0.5, then 1 - c((t - 0.5) / 0.5)               (dropout, weight decay)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from mlpcli.errors import ModelFileError, UsageError, choose
from mlpcli.optimizers import resolve_hyperparameters
from mlpcli.option_parsers import Parser, number

_FRACTION = number(float, 0.0, 1.0, low_inclusive=False, high_inclusive=False)

#: hyperparameter -> (its option name as config.py would spell it, the parser that checks it).
#: Plateau's options carry an `lr_` prefix so they cannot be confused with early stopping's.
PARSERS: dict[str, tuple[str, Parser]] = {
    "lr0": ("lr", number(float, 0.0, low_inclusive=False)),
    "epochs": ("epochs", number(int, 1)),
    "step_size": ("lr_step_size", number(int, 1)),
    "gamma": ("lr_gamma", _FRACTION),
    "min_lr": ("min_lr", number(float, 0.0)),
    "factor": ("lr_factor", _FRACTION),
    "patience": ("lr_patience", number(int, 0)),
    "min_delta": ("lr_min_delta", number(float, 0.0)),
}


def _parse(key: str, value: Any) -> Any:
    option, parse = PARSERS[key]
    return parse(option, value)


class Schedule:
    """Base class: `lr(epoch, monitor)` is called once after every epoch, in order."""

    name: ClassVar[str]
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {}

    def __init__(self, lr0: float, epochs: int, **hyper: float) -> None:
        self.lr0: float = _parse("lr0", lr0)
        self.epochs: int = _parse("epochs", epochs)
        values = resolve_hyperparameters(
            "learning-rate schedule", self.name, hyper, self.HYPERPARAMETERS, PARSERS
        )
        for key, value in values.items():
            setattr(self, key, value)

    def lr(self, epoch: int, monitor: float | None) -> float:
        """The rate for epoch `epoch + 1`, given the monitored value (lower is better)."""
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, float]:
        """The schedule's own settings (lr0 and epochs belong to the trainer's)."""
        return {key: getattr(self, key) for key in self.HYPERPARAMETERS}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able: {"schedule": name, "scalars": {...}}."""
        return {"schedule": self.name, "scalars": {}}

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        if d.get("schedule") != self.name:
            raise UsageError(
                f"The checkpoint was trained with --schedule {d.get('schedule')}, not "
                f"{self.name}; resume with --schedule {d.get('schedule')}."
            )
        try:
            self._load_scalars(d["scalars"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"The saved schedule state is incomplete: {exc!r}.") from None

    def _load_scalars(self, scalars: Mapping[str, Any]) -> None:
        """Stateless schedules have nothing to restore."""


class Constant(Schedule):
    """lr = lr0."""

    name = "constant"

    def lr(self, epoch: int, monitor: float | None) -> float:
        return self.lr0


class Step(Schedule):
    """lr = lr0 * gamma^floor((e+1)/step_size): cut by gamma every step_size epochs."""

    name = "step"
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {"step_size": 10, "gamma": 0.5}
    step_size: int
    gamma: float

    def lr(self, epoch: int, monitor: float | None) -> float:
        return self.lr0 * self.gamma ** ((epoch + 1) // self.step_size)


class Cosine(Schedule):
    """lr = min_lr + 0.5*(lr0 - min_lr)*(1 + cos(pi*min(e+1, E)/E)): reaches min_lr at E."""

    name = "cosine"
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {"min_lr": 0.0}
    min_lr: float

    def __init__(self, lr0: float, epochs: int, **hyper: float) -> None:
        super().__init__(lr0, epochs, **hyper)
        if self.min_lr > self.lr0:
            raise UsageError(
                f"--min-lr ({self.min_lr:g}) must not exceed --lr ({self.lr0:g}) for the cosine "
                f"schedule, which decreases from --lr to --min-lr."
            )

    def lr(self, epoch: int, monitor: float | None) -> float:
        progress = min(epoch + 1, self.epochs) / self.epochs  # stays at min_lr past E
        return self.min_lr + 0.5 * (self.lr0 - self.min_lr) * (1.0 + math.cos(math.pi * progress))


class Plateau(Schedule):
    """Reduce on plateau: lr <- max(factor*lr, min_lr) after `patience` epochs without
    monitor < best - min_delta*|best|."""

    name = "plateau"
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {
        "factor": 0.5,
        "patience": 5,
        "min_delta": 0.0,
        "min_lr": 1e-6,
    }
    factor: float
    patience: int
    min_delta: float
    min_lr: float

    def __init__(self, lr0: float, epochs: int, **hyper: float) -> None:
        super().__init__(lr0, epochs, **hyper)
        self.current = self.lr0
        self.best: float | None = None
        self.num_bad_epochs = 0

    def lr(self, epoch: int, monitor: float | None) -> float:
        if monitor is None:
            raise UsageError(
                "--schedule plateau needs a monitored loss after every epoch; use a validation "
                "set or monitor the training loss."
            )
        monitor = float(monitor)
        # A non-finite value (a diverging epoch) is never an improvement, and never the best.
        if math.isfinite(monitor) and (
            self.best is None or monitor < self.best - self.min_delta * abs(self.best)
        ):
            self.best = monitor
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
            if self.num_bad_epochs >= self.patience:
                self.current = max(self.current * self.factor, min(self.min_lr, self.current))
                self.num_bad_epochs = 0
        return self.current

    def state_dict(self) -> dict[str, Any]:
        scalars = {"lr": self.current, "best": self.best, "num_bad_epochs": self.num_bad_epochs}
        return {"schedule": self.name, "scalars": scalars}

    def _load_scalars(self, scalars: Mapping[str, Any]) -> None:
        best = None if scalars["best"] is None else float(scalars["best"])
        current, num_bad_epochs = float(scalars["lr"]), int(scalars["num_bad_epochs"])
        self.current, self.best, self.num_bad_epochs = current, best, num_bad_epochs


SCHEDULES: dict[str, type[Schedule]] = {cls.name: cls for cls in (Constant, Step, Cosine, Plateau)}


def get(name: str, lr0: float, epochs: int, **hyper: float) -> Schedule:
    """The schedule `name` starting from `lr0` over `epochs` epochs, with its hyperparameters."""
    cls = cast(
        type[Schedule], choose("learning-rate schedule", name, cast(dict[str, object], SCHEDULES))
    )
    return cls(lr0, epochs, **hyper)


# --- progress schedules: per-step factors of training progress t in [0, 1] ----------------------


def _cos_ramp(u: float) -> float:
    """c(u) = (1 - cos(pi u)) / 2: 0 at u = 0, 1 at u = 1, flat at both ends."""
    return 0.5 * (1.0 - math.cos(math.pi * u))


class ProgressSchedule:
    """A factor of training progress t = steps done / total steps (formulas: module docstring)."""

    name: ClassVar[str]

    def __call__(self, t: float) -> float:
        raise NotImplementedError

    @staticmethod
    def progress(step: int, total_steps: int) -> float:
        """t for the step about to be taken, `step` steps having been taken (0-based)."""
        return min(max(step / total_steps, 0.0), 1.0)


class ConstantFactor(ProgressSchedule):
    name = "constant"

    def __call__(self, t: float) -> float:
        return 1.0


class CosineFactor(ProgressSchedule):
    name = "cosine"

    def __call__(self, t: float) -> float:
        return 1.0 - _cos_ramp(t)


class Coslog4(ProgressSchedule):
    """Four cosine cycles on a log time axis: the restarts come at t = 1/15, 3/15 and 7/15."""

    name = "coslog4"
    n_cycles: ClassVar[int] = 4

    def __call__(self, t: float) -> float:
        u = math.log2(1.0 + (2.0**self.n_cycles - 1.0) * t)
        return 0.5 * (1.0 - math.cos(2.0 * math.pi * u))


class OneCycle(ProgressSchedule):
    """Smith's one-cycle shape, as pytabkit spells it: up from 0.04 over the first quarter,
    then down to 1e-5."""

    name = "one_cycle"

    def __call__(self, t: float) -> float:
        if t < 0.25:
            return 0.04 + 0.96 * _cos_ramp(t / 0.25)
        return 1.0 - (1.0 - 1e-5) * _cos_ramp((t - 0.25) / 0.75)


class FlatCos(ProgressSchedule):
    """Flat for the first half, then a cosine down to 0 (RealMLP-TD's dropout and decay)."""

    name = "flat_cos"

    def __call__(self, t: float) -> float:
        return 1.0 if t < 0.5 else 1.0 - _cos_ramp((t - 0.5) / 0.5)


PROGRESS_SCHEDULES: dict[str, type[ProgressSchedule]] = {
    cls.name: cls for cls in (ConstantFactor, CosineFactor, Coslog4, OneCycle, FlatCos)
}


def get_progress(name: str) -> ProgressSchedule:
    """The progress schedule `name` (a per-step factor of a base lr, dropout or weight decay)."""
    cls = cast(
        type[ProgressSchedule],
        choose("progress schedule", name, cast(dict[str, object], PROGRESS_SCHEDULES)),
    )
    return cls()
