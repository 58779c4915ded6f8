"""Targets <-> network outputs, one encoding class per task (`TASKS`), behind `TargetEncoder`.

Fitted on the training rows only, like `preprocessing`'s features: class labels in a fixed
order (binary: the positive class second), multilabel 0/1 columns, and regression targets
standardised with the training mean and standard deviation (ddof 0). The state is JSON metadata
plus float64 arrays, so the model file needs no pickle. Class weights (`--class-weight
balanced` or per class) are computed here as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import DTypeLike, NDArray

from mlpcli.cells import check_columns, level_codes, numeric_values, quote_list
from mlpcli.errors import DataError, ModelFileError, UsageError, choose

log = logging.getLogger("mlpcli")

Array = NDArray[np.float64]
#: Version of the target encoder's state in the model file.
STATE_VERSION = 1


def _target_strings(frame: pd.DataFrame, target: str) -> tuple[NDArray[np.intp], list[str]]:
    codes, names = level_codes(frame[target])
    n_missing = int((codes < 0).sum())
    if n_missing:
        raise DataError(
            f"Target column '{target}' has {n_missing} missing value(s); drop those rows first."
        )
    return codes, names


def balanced_class_weights(y_index: NDArray[np.integer]) -> Array:
    """Per-sample weights n / (k * count_c) (scikit-learn's 'balanced'), k = classes present.

    For a 2-D 0/1 matrix (multilabel) the per-column weights are multiplied, as scikit-learn's
    `compute_sample_weight` does for multi-output targets.
    """
    y = np.asarray(y_index)
    if y.ndim == 2:
        weights = np.ones(len(y))
        for j in range(y.shape[1]):
            weights *= balanced_class_weights(y[:, j])
        return weights
    counts = np.bincount(y)
    present = counts > 0
    per_class = np.zeros(len(counts))
    per_class[present] = len(y) / (present.sum() * counts[present])
    return per_class[y]


#: Named class-weight modes (besides an explicit label -> weight mapping).
CLASS_WEIGHTS: dict[str, Callable[[NDArray[np.integer]], Array]] = {
    "balanced": balanced_class_weights,
}


class _Task:
    """How one task turns target columns into network outputs and back."""

    name: ClassVar[str]
    classification: ClassVar[bool] = True
    #: Whether `--class-weight` may map labels to weights (not only 'balanced').
    weights_by_label: ClassVar[bool] = True

    def __init__(self, targets: list[str]) -> None:
        self.targets = targets
        self.labels: list[str] = []

    def known_values(self) -> dict[str, list[str]]:
        """Per classification target, the label strings the encoder knows."""
        return {}

    @property
    def n_outputs(self) -> int:
        raise NotImplementedError

    def fit(self, frame: pd.DataFrame, labels: Sequence[str] | None) -> None:
        raise NotImplementedError

    def encode(self, frame: pd.DataFrame, dtype: DTypeLike) -> Any:
        raise NotImplementedError

    def decode(self, output: NDArray[Any], threshold: float) -> NDArray[Any]:
        raise NotImplementedError

    def extra_meta(self) -> dict[str, Any]:
        return {}

    def arrays(self) -> dict[str, Array]:
        return {}

    def restore(self, meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> None:
        self.labels = [str(v) for v in meta["labels"]]


class _SingleColumnClasses(_Task):
    """One target column of string labels (binary and multiclass)."""

    min_labels: ClassVar[int] = 2
    max_labels: ClassVar[int | None] = None

    def known_values(self) -> dict[str, list[str]]:
        return {self.targets[0]: list(self.labels)}

    def fit(self, frame: pd.DataFrame, labels: Sequence[str] | None) -> None:
        (target,) = self.targets
        _, names = _target_strings(frame, target)
        seen = sorted(set(names))
        if labels is None:
            labels = seen
        known = set(labels)
        extra = [s for s in seen if s not in known]
        if extra:
            raise DataError(
                f"Target '{target}' holds label(s) missing from the label list: "
                f"{quote_list(extra)}."
            )
        count = len(labels)
        if count < self.min_labels or (self.max_labels is not None and count > self.max_labels):
            raise DataError(
                f"Target '{target}' has {count} class(es) ({quote_list(list(labels))}), "
                f"which does not fit task '{self.name}'; choose another --task or --target."
            )
        self.labels = list(labels)

    def _indices(self, frame: pd.DataFrame) -> NDArray[np.intp]:
        (target,) = self.targets
        codes, names = _target_strings(frame, target)
        lookup = {label: j for j, label in enumerate(self.labels)}
        to_index = np.array([lookup.get(n, -1) for n in names], dtype=np.intp)
        unseen = sorted({n for n, j in zip(names, to_index, strict=True) if j < 0})
        if unseen:
            raise DataError(
                f"Target '{target}' has label(s) the model was not trained on: "
                f"{quote_list(unseen)}; the model knows {quote_list(self.labels)}."
            )
        return to_index[codes]


class _Multiclass(_SingleColumnClasses):
    """k >= 2 classes, one-hot targets for a softmax output."""

    name = "multiclass"

    @property
    def n_outputs(self) -> int:
        return len(self.labels)

    def encode(self, frame: pd.DataFrame, dtype: DTypeLike) -> Any:
        y = self._indices(frame)
        Y = np.zeros((len(y), len(self.labels)), dtype=dtype)
        Y[np.arange(len(y)), y] = 1
        return y, Y

    def decode(self, output: NDArray[Any], threshold: float) -> NDArray[Any]:
        decoded: NDArray[Any] = np.asarray(self.labels)[np.argmax(output, axis=1)]
        return decoded


class _Binary(_SingleColumnClasses):
    """Two classes, one sigmoid output: the probability of labels[1]."""

    name = "binary"
    max_labels = 2

    @property
    def n_outputs(self) -> int:
        return 1

    def encode(self, frame: pd.DataFrame, dtype: DTypeLike) -> Any:
        y = self._indices(frame)
        return y, y.astype(dtype).reshape(-1, 1)

    def decode(self, output: NDArray[Any], threshold: float) -> NDArray[Any]:
        positive = np.asarray(output).reshape(len(output), -1)[:, -1] >= threshold
        return np.asarray(self.labels)[positive.astype(np.intp)]


class _Multilabel(_Task):
    """Several 0/1 target columns, one sigmoid output each; labels are the target names.

    Each column keeps its own two values as strings (e.g. '0'/'1' or 'False'/'True'), so
    decoded predictions look like the input.
    """

    name = "multilabel"
    weights_by_label = False

    def __init__(self, targets: list[str]) -> None:
        super().__init__(targets)
        self.values: list[list[str]] = []

    def known_values(self) -> dict[str, list[str]]:
        return {t: list(pair) for t, pair in zip(self.targets, self.values, strict=True)}

    @property
    def n_outputs(self) -> int:
        return len(self.targets)

    def fit(self, frame: pd.DataFrame, labels: Sequence[str] | None) -> None:
        self.labels = list(self.targets)
        self.values = []
        for target in self.targets:
            seen = set(_target_strings(frame, target)[1])
            pair = next((p for p in (["0", "1"], ["False", "True"]) if seen <= set(p)), None)
            if pair is None and len(seen) == 2:
                pair = sorted(seen)
            if pair is None:
                raise DataError(
                    f"Multilabel target '{target}' must hold two values such as 0/1, "
                    f"but holds {quote_list(sorted(seen))}."
                )
            self.values.append(pair)

    def encode(self, frame: pd.DataFrame, dtype: DTypeLike) -> Any:
        y = np.empty((len(frame), len(self.targets)), dtype=np.intp)
        for j, (target, pair) in enumerate(zip(self.targets, self.values, strict=True)):
            codes, names = _target_strings(frame, target)
            unseen = sorted(set(names) - set(pair))
            if unseen:
                raise DataError(
                    f"Target '{target}' has value(s) the model was not trained on: "
                    f"{quote_list(unseen)}; expected {pair[0]!r} or {pair[1]!r}."
                )
            y[:, j] = np.array([pair.index(n) for n in names], dtype=np.intp)[codes]
        return y, y.astype(dtype)

    def decode(self, output: NDArray[Any], threshold: float) -> NDArray[Any]:
        values = np.asarray(self.values)  # (t, 2)
        on = (np.asarray(output) >= threshold).astype(np.intp)
        return values[np.arange(len(self.values)), on]

    def extra_meta(self) -> dict[str, Any]:
        return {"values": self.values}

    def restore(self, meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> None:
        super().restore(meta, arrays)
        self.values = [[str(v) for v in pair] for pair in meta["values"]]


class _Regression(_Task):
    """Numeric targets, standardised with the training mean and std; decoded to original units."""

    name = "regression"
    classification = False

    def __init__(self, targets: list[str]) -> None:
        super().__init__(targets)
        self.mean: Array = np.empty(0)
        self.std: Array = np.empty(0)

    @property
    def n_outputs(self) -> int:
        return len(self.targets)

    def _values(self, frame: pd.DataFrame) -> Array:
        Y = np.empty((len(frame), len(self.targets)))
        for j, target in enumerate(self.targets):
            Y[:, j] = numeric_values(frame[target], target, what="Target")
            n_missing = int(np.isnan(Y[:, j]).sum())
            if n_missing:
                raise DataError(
                    f"Target column '{target}' has {n_missing} missing value(s); "
                    "drop those rows first."
                )
        return Y

    def fit(self, frame: pd.DataFrame, labels: Sequence[str] | None) -> None:
        Y = self._values(frame)
        from mlpcli.metrics import R2_RELATIVE_SPREAD, tiny_spread

        for target in np.asarray(self.targets)[tiny_spread(Y)]:
            log.warning(
                f"Target '{target}' varies by less than {R2_RELATIVE_SPREAD:g} of its mean: its "
                "R² and standardisation are dominated by rounding; subtract a reference value "
                "from it (or rescale it) first."
            )
        self.mean = Y.mean(axis=0)
        std = Y.std(axis=0)
        constant = ~(std > 1e-12 * np.maximum(1.0, np.abs(self.mean)))
        if constant.any():
            log.warning(
                "Constant regression target(s) in the training rows: %s.",
                quote_list([t for t, c in zip(self.targets, constant, strict=True) if c]),
            )
        self.std = np.where(constant, 1.0, std)

    def encode(self, frame: pd.DataFrame, dtype: DTypeLike) -> Any:
        return ((self._values(frame) - self.mean) / self.std).astype(dtype)

    def decode(self, output: NDArray[Any], threshold: float) -> NDArray[Any]:
        return np.asarray(output, dtype=np.float64) * self.std + self.mean

    def arrays(self) -> dict[str, Array]:
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    def restore(self, meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> None:
        super().restore(meta, arrays)
        self.mean = np.asarray(arrays["mean"], dtype=np.float64)
        self.std = np.asarray(arrays["std"], dtype=np.float64)
        if self.mean.shape != (len(self.targets),) or self.std.shape != self.mean.shape:
            raise ModelFileError("Target state arrays do not match its target list.")


#: task name -> how its targets are encoded.
TASKS: dict[str, type[_Task]] = {
    "binary": _Binary,
    "multiclass": _Multiclass,
    "multilabel": _Multilabel,
    "regression": _Regression,
}


class TargetEncoder:
    """Targets <-> network outputs for one task.

    `encode(frame)` gives `(y_index, Y)` for classification (`y_index` class indices, (n, t) 0/1
    for multilabel; `Y` the float matrix the loss compares with: one-hot (n, k), (n, 1) 0/1 for
    binary, (n, t) for multilabel) and the standardised (n, t) matrix for regression.
    `decode(output)` turns network outputs back into label strings or original units.
    """

    def __init__(self) -> None:
        self._task: _Task | None = None

    def fit(
        self,
        frame: pd.DataFrame,
        targets: Sequence[str],
        task: str,
        labels: Sequence[str] | None = None,
    ) -> TargetEncoder:
        """Learn labels (classification) or mean/std (regression) from the training rows.

        `labels` fixes the class order for binary/multiclass (positive class = labels[1]); by
        default the sorted label strings of the training rows. Ignored for multilabel, whose
        labels are the target names.
        """
        targets = list(targets)
        if not targets:
            raise UsageError("No target column; name one with --target.")
        check_columns(frame, targets, "target")
        task_class: type[_Task] = choose("task", task, TASKS)
        if task_class in (_Binary, _Multiclass) and len(targets) != 1:
            raise UsageError(
                f"Task '{task}' takes one --target, got {len(targets)}: {quote_list(targets)}; "
                "use --task multilabel or regression for several."
            )
        self._task = task_class(targets)
        self._task.fit(frame, labels)
        return self

    @property
    def task(self) -> str:
        return self._fitted().name

    @property
    def targets(self) -> list[str]:
        return list(self._fitted().targets)

    def known_values(self) -> dict[str, list[str]]:
        """Per classification target, the label strings the model knows (none for regression)."""
        return self._fitted().known_values()

    @property
    def labels(self) -> list[str]:
        """Class labels (binary/multiclass), target names (multilabel), empty for regression."""
        return list(self._fitted().labels)

    @property
    def classification(self) -> bool:
        return self._fitted().classification

    @property
    def n_outputs(self) -> int:
        """Width of the network's output layer."""
        return self._fitted().n_outputs

    def _fitted(self) -> _Task:
        if self._task is None:
            raise ModelFileError("The target encoder has not been fitted.")
        return self._task

    def encode(self, frame: pd.DataFrame, dtype: DTypeLike = np.float32) -> Any:
        """`(y_index, Y)` for classification, the standardised matrix for regression.

        Labels not seen in training raise DataError naming them.
        """
        task = self._fitted()
        check_columns(frame, task.targets, "target")
        return task.encode(frame, dtype)

    def decode(self, output: NDArray[Any], threshold: float = 0.5) -> NDArray[Any]:
        """Label strings (argmax; `>= threshold` for binary and multilabel) or original units."""
        return self._fitted().decode(np.asarray(output), threshold)

    def class_weights(
        self, y_index: NDArray[np.integer], mode: str | Mapping[str, float] = "balanced"
    ) -> Array:
        """Per-sample weights: 'balanced' (n / (k * count_c)) or a label -> weight mapping.

        Labels left out of a mapping weigh 1.
        """
        task = self._fitted()
        if not task.classification:
            raise UsageError("--class-weight applies to classification, not to regression.")
        if isinstance(mode, str):
            weigh: Callable[[NDArray[np.integer]], Array]
            weigh = choose("class weight", mode, CLASS_WEIGHTS)
            return weigh(np.asarray(y_index))
        if not task.weights_by_label:
            raise UsageError("--class-weight takes 'balanced' for multilabel targets, not a map.")
        unknown = [k for k in mode if k not in task.labels]
        if unknown:
            raise UsageError(
                f"--class-weight names unknown class(es) {quote_list(unknown)}; "
                f"the classes are {quote_list(task.labels)}."
            )
        per_class = np.array([float(mode.get(label, 1.0)) for label in task.labels])
        if not (np.isfinite(per_class).all() and (per_class > 0).all()):
            raise UsageError(f"--class-weight values must be positive numbers, got {dict(mode)}.")
        return per_class[np.asarray(y_index)]

    def to_state(self, prefix: str = "target") -> tuple[dict[str, Any], dict[str, Array]]:
        """JSON-able metadata and float64 arrays named `<prefix>.mean|std` (regression only)."""
        task = self._fitted()
        meta = {
            "version": STATE_VERSION,
            "task": task.name,
            "targets": list(task.targets),
            "labels": list(task.labels),
            **task.extra_meta(),
        }
        return meta, {f"{prefix}.{k}": v for k, v in task.arrays().items()}

    @classmethod
    def from_state(
        cls, meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]], prefix: str = "target"
    ) -> TargetEncoder:
        self = cls()
        try:
            if meta["version"] != STATE_VERSION:
                raise ModelFileError(
                    f"Unsupported target state version {meta['version']!r} "
                    f"(this mlpcli reads version {STATE_VERSION})."
                )
            task_class = TASKS[meta["task"]]
            task = task_class([str(t) for t in meta["targets"]])
            start = prefix + "."
            own = {k[len(start) :]: v for k, v in arrays.items() if k.startswith(start)}
            task.restore(meta, own)
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"Target state is incomplete or malformed: {exc}") from None
        self._task = task
        return self
