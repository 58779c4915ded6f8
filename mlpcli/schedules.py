"""Learning-rate schedules: after each epoch, the learning rate for the next one.

e is the 0-based epoch that has just finished, E the number of epochs, lr0 the initial rate.

    constant  lr = lr0
    step      lr = lr0 * gamma^floor((e+1)/step_size)
    cosine    lr = min_lr + 0.5*(lr0 - min_lr)*(1 + cos(pi*min(e+1, E)/E))
    plateau   lr <- max(factor*lr, min_lr) once `patience` epochs in a row did not improve, where
              an epoch improves when monitor < best - min_delta*|best| (relative, so one setting
              serves losses of any scale); the count restarts after an improvement or a cut

A schedule never raises the rate: plateau's floor is min(min_lr, lr), cosine refuses min_lr > lr0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from mlpcli.config import Parser, number
from mlpcli.errors import ModelFileError, UsageError, choose
from mlpcli.optimizers import resolve_hyperparameters

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
