"""Targets and the learning task: which task a target column implies, and its labels."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpcli.data.columns import check_numeric
from mlpcli.data.sniff import where
from mlpcli.errors import (
    DataError,
    UsageError,
    choose,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mlpcli")


#: Auto-detection calls an integer target multiclass when it has at most this many distinct
#: values, and fewer than CLASS_SHARE x n_rows of them (at least 20 rows per class on average);
#: otherwise counts, ages and scores with many levels stay regression.
MAX_AUTO_CLASSES = 10


CLASS_SHARE = 0.05


@dataclass
class TaskInfo:
    """The learning task, why it was chosen, and the class labels (None for regression).

    For `multilabel`, `labels` holds the target names in the given order: one 0/1 output each.
    """

    task: str
    reason: str
    labels: list[str] | None


def drop_missing_targets(
    frame: pd.DataFrame, targets: Sequence[str], *, source: str = ""
) -> tuple[pd.DataFrame, int]:
    """Drop rows with a missing target, renumbering rows from 0; the caller reports the count."""
    present = frame[list(targets)].notna()
    for name in targets:
        if not present[name].any():
            raise DataError(
                f"Target column '{name}'{where(source)} has no values (all {len(frame)} rows "
                "are missing)."
            )
    keep = present.all(axis=1).to_numpy()
    n_dropped = int((~keep).sum())
    if n_dropped == 0:
        return frame, 0
    if not keep.any():
        raise DataError(f"No row{where(source)} has all targets ({', '.join(targets)}) present.")
    return frame.loc[keep].reset_index(drop=True), n_dropped


def _format_label(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer():
            return str(int(value))
        return np.format_float_positional(value, trim="-")  # shortest repr for its dtype
    return str(value)


def as_label_strings(column: pd.Series) -> pd.Series:
    """Target values as the class-label strings of `TaskInfo.labels` (missing stays missing)."""
    import pandas as pd

    codes, uniques = pd.factorize(column)
    # Format the uniques in their own dtype: float32 0.1 is "0.1", not "0.10000000149011612".
    labels = np.array([_format_label(v) for v in np.asarray(uniques)] + [None], dtype=object)
    return pd.Series(labels[codes], index=column.index, name=column.name, dtype="str")


@dataclass
class _Target:
    """What task detection needs to know about one target column."""

    name: str
    kind: str  # "text", "bool" or "numeric"
    distinct: list[Any]  # sorted; numpy scalars for numeric targets
    n_rows: int

    @property
    def labels(self) -> list[str]:
        return [_format_label(v) for v in self.distinct]

    @property
    def adjective(self) -> str:
        return {"text": "string", "bool": "boolean"}.get(self.kind, self.kind)

    @property
    def integer_valued(self) -> bool:
        return self.kind == "numeric" and all(float(v).is_integer() for v in self.distinct)

    @property
    def zero_one(self) -> bool:
        return self.kind == "bool" or (
            self.kind == "numeric" and {float(v) for v in self.distinct} <= {0.0, 1.0}
        )

    def shown(self, limit: int = 5) -> str:
        labels = self.labels
        return ", ".join(labels[:limit]) + (", ..." if len(labels) > limit else "")


def _describe(frame: pd.DataFrame, name: str, source: str, n_rows: int | None) -> _Target:
    import pandas as pd

    column = frame[name].dropna()
    n = len(column) if n_rows is None else n_rows
    if len(column) == 0:
        raise DataError(f"Target column '{name}'{where(source)} has no values.")
    if pd.api.types.is_bool_dtype(column):
        kind = "bool"
    elif pd.api.types.is_numeric_dtype(column):
        kind = "numeric"
        check_numeric(column.reset_index(drop=True), name, source)
    elif all(isinstance(v, (bool, np.bool_)) for v in column.unique()):
        kind = "bool"  # booleans with missing values come back as object
    else:
        kind = "text"
        column = as_label_strings(column)  # mixed cells: 1.0 and "1" are one label, as elsewhere
    # Keep numpy scalars: float32 0.1 must become the label "0.1".
    values = column.to_numpy() if kind == "numeric" else column.to_numpy(dtype=object)
    distinct = sorted(np.unique(values)) if kind == "numeric" else sorted(set(values))
    if len(distinct) == 1:
        raise DataError(
            f"Target column '{name}'{where(source)} has the single value "
            f"'{_format_label(distinct[0])}' in all {n} rows; there is nothing to learn."
        )
    return _Target(name=name, kind=kind, distinct=distinct, n_rows=n)


def _one_target(targets: list[_Target], task: str) -> _Target:
    if len(targets) != 1:
        names = ", ".join(t.name for t in targets)
        raise UsageError(
            f"--task {task} takes one target but got {len(targets)} ({names}); use "
            "--task multilabel for several 0/1 targets or --task regression for numeric ones."
        )
    return targets[0]


def _classes(target: _Target, task: str, reason: str) -> TaskInfo:
    return TaskInfo(task=task, reason=reason, labels=target.labels)


def _auto(targets: list[_Target]) -> TaskInfo:
    if len(targets) > 1:
        names = ", ".join(f"'{t.name}'" for t in targets)
        if all(t.zero_one for t in targets):
            return TaskInfo(
                "multilabel", f"targets {names} all hold only 0/1 values", [t.name for t in targets]
            )
        if all(t.kind == "numeric" for t in targets):
            return TaskInfo("regression", f"targets {names} are all numeric", None)
        raise UsageError(
            f"Targets {names} mix text and numbers; train one target at a time, or pass "
            "several 0/1 targets (multilabel) or several numeric ones (regression)."
        )
    t = targets[0]
    n = len(t.distinct)
    if t.kind != "numeric":
        task = "binary" if n == 2 else "multiclass"
        return _classes(t, task, f"target '{t.name}' has {n} {t.adjective} values ({t.shown()})")
    if n == 2:
        return _classes(t, "binary", f"target '{t.name}' has two numeric values ({t.shown()})")
    if t.integer_valued and n <= MAX_AUTO_CLASSES and n < CLASS_SHARE * t.n_rows:
        reason = (
            f"target '{t.name}' has {n} distinct integer values ({t.shown()}) in {t.n_rows} rows"
        )
        return _classes(t, "multiclass", reason)
    return TaskInfo("regression", f"target '{t.name}' is numeric with {n} distinct values", None)


def _binary(targets: list[_Target]) -> TaskInfo:
    t = _one_target(targets, "binary")
    if len(t.distinct) != 2:
        raise UsageError(
            f"--task binary needs two classes but target '{t.name}' has {len(t.distinct)} "
            f"({t.shown()}); use --task multiclass or auto."
        )
    return _classes(t, "binary", f"--task binary; target '{t.name}' has classes {t.shown()}")


def _multiclass(targets: list[_Target]) -> TaskInfo:
    t = _one_target(targets, "multiclass")
    if t.kind == "numeric" and not t.integer_valued:
        raise UsageError(
            f"--task multiclass needs class labels but target '{t.name}' has non-integer "
            f"numbers ({t.shown()}); use --task regression."
        )
    reason = f"--task multiclass; target '{t.name}' has {len(t.distinct)} classes"
    return _classes(t, "multiclass", reason)


def _multilabel(targets: list[_Target]) -> TaskInfo:
    if len(targets) < 2:
        raise UsageError(
            "--task multilabel needs several 0/1 target columns (--target a --target b); "
            "for one target use --task binary."
        )
    for t in targets:
        if not t.zero_one:
            raise UsageError(
                f"--task multilabel needs 0/1 targets but '{t.name}' holds {t.shown()}."
            )
    names = ", ".join(f"'{t.name}'" for t in targets)
    return TaskInfo(
        "multilabel", f"--task multilabel; 0/1 targets {names}", [t.name for t in targets]
    )


def _regression(targets: list[_Target]) -> TaskInfo:
    for t in targets:
        if t.kind != "numeric":
            raise UsageError(
                f"--task regression needs numeric targets but '{t.name}' holds {t.adjective} "
                f"values ({t.shown()}); use --task binary, multiclass or auto."
            )
    names = ", ".join(f"'{t.name}'" for t in targets)
    return TaskInfo("regression", f"--task regression; numeric target(s) {names}", None)


TASK_RULES: dict[str, Callable[[list[_Target]], TaskInfo]] = {
    "auto": _auto,
    "binary": _binary,
    "multiclass": _multiclass,
    "multilabel": _multilabel,
    "regression": _regression,
}


def detect_task(
    frame: pd.DataFrame,
    targets: Sequence[str],
    task: str = "auto",
    *,
    source: str = "",
    n_rows: int | None = None,
) -> TaskInfo:
    """Choose the task from the target values (`auto`) or check that an explicit one fits.

    Auto: text or boolean target -> binary/multiclass; two numeric values -> binary; integer
    values with at most MAX_AUTO_CLASSES distinct values and fewer than CLASS_SHARE x rows ->
    multiclass; otherwise regression. Several targets: all 0/1 -> multilabel, all numeric ->
    multi-output regression. Missing target values are ignored (drop them first).
    With `n_rows`, `frame` holds each target's distinct values only (NaN-padded: a table read
    block by block keeps no more), standing for `n_rows` rows.
    """
    rule = choose("task", task, TASK_RULES)
    if not targets:
        raise UsageError("Name the column to predict with --target.")
    described = [_describe(frame, name, source, n_rows) for name in dict.fromkeys(targets)]
    return rule(described)
