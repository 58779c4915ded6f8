"""Explain's shared parts: reading a table as the model's training table was read, options,
the result and its JSON, the features importance is reported for (columns or
`--group-features` groups), and the network's outputs."""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlpcli import data, prepare
from mlpcli.data.codecs import TABLE_SEPARATORS, table_extension
from mlpcli.errors import DataError
from mlpcli.limits import MAX_GROUPS_BYTES, read_bounded, shorten
from mlpcli.outputs import provenance
from mlpcli.target_encoding import TargetEncoder
from mlpcli.trained import TrainedModel

LOG = logging.getLogger("mlpcli")

Floats = NDArray[np.float64]
Indices = NDArray[np.intp]

#: Rows per batched forward pass (several permutation repeats or integration steps share one).
BATCH_ROWS = 65536
#: Completeness errors above this fraction of the largest |f(x) - f(baseline)| get a warning.
COMPLETENESS_WARNING = 0.05


# --------------------------------------------------------------------------- reading
def read_data(
    model: TrainedModel,
    path: str,
    sep: str | None = None,
    decimal: str | None = None,
    transpose: bool | None = None,
) -> data.Table:
    """Read a table as the model's training table was read (same separator, decimal mark,
    missing-value tokens, layout), unless `sep`, `decimal` or `transpose` override them; a
    table lacking the model's features is an error that says if it looks transposed."""
    from mlpcli import predicting

    settings = predicting.model_settings(model, sep, decimal, transpose, path)
    table = prepare.read(path, settings)
    predicting.check_columns(
        model,
        table.frame.columns,
        table.source,
        hint=lambda: predicting.transposed_hint(model, path, settings.data.transpose, settings),
    )
    return table


# --------------------------------------------------------------------------- options and result
@dataclass(frozen=True)
class ExplainFiles:
    """The model file and data table of an explanation with their SHA-256s, and the reading
    options that override the model's (None: the model's)."""

    model: str
    model_sha256: str
    data: str
    data_sha256: str
    sep: str | None = None
    decimal: str | None = None
    transpose: bool | None = None


@dataclass(frozen=True)
class ExplainOptions:
    """What to compute. None means "not given": the method's default applies, and an option
    that the chosen method does not use is an error rather than silently ignored."""

    method: str = "permutation"
    metric: str | None = None
    repeats: int | None = None
    seed: int = 0
    n_jobs: int = 1
    #: Where permutation repeats run: "local" processes, or "dask" with `scheduler`.
    backend: str = "local"
    scheduler: str | None = None
    #: dask: send the model and data to the workers even where they could read the files.
    ship_data: bool = False
    #: The files the model and data came from (`explain_files` sets it), so that dask workers
    #: on a shared filesystem read them themselves.
    files: ExplainFiles | None = None
    groups: Mapping[str, Sequence[str]] | None = None
    steps: int | None = None
    rule: str | None = None
    baseline: pd.DataFrame | None = field(default=None, repr=False)


@dataclass
class Explanation:
    """Importances per feature (an input column, or a named group), in the model's column order.

    `per_output` and `effect` have one column per network output (`outputs`); `effect` is the
    signed mean effect (gradient: d f / d raw x; integrated gradients: the mean attribution).
    """

    method: str
    task: str
    features: list[str]
    columns: list[list[str]]
    importance: Floats
    sd: Floats
    outputs: list[str]
    n_rows: int
    units: str
    per_output: Floats | None = None
    effect: Floats | None = None
    metric: str | None = None
    greater_is_better: bool | None = None
    baseline_score: float | None = None
    repeats: int | None = None
    seed: int | None = None
    repeat_importances: Floats | None = None
    n_dropped: int = 0
    completeness: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def rank(self) -> Indices:
        """1 for the most important feature; equal importances share the best of their ranks
        (0, 0, 0 rank 1, 1, 1: no order is invented); undefined (NaN) importances rank last."""
        key = np.where(np.isnan(self.importance), -np.inf, self.importance)
        order = np.lexsort((np.arange(len(key)), -key))
        rank = np.empty(len(key), dtype=np.intp)
        rank[order] = np.arange(1, len(key) + 1)
        # Ties with the previous feature in `order` take its rank.
        for previous, i in itertools.pairwise(order):
            if key[i] == key[previous] and not np.isnan(self.importance[i]):
                rank[i] = rank[previous]
        return rank

    def to_frame(self) -> pd.DataFrame:
        """The output table, most important first: feature, importance, sd, rank, then effect
        and one importance_<output> / effect_<output> pair per output when there are several."""
        table: dict[str, Any] = {
            "feature": self.features,
            "importance": self.importance,
            "sd": self.sd,
            "rank": self.rank,
        }
        several = len(self.outputs) > 1
        if self.effect is not None and not several:
            table["effect"] = self.effect[:, 0]
        if several and self.per_output is not None:
            for k, name in enumerate(self.outputs):
                table[f"importance_{name}"] = self.per_output[:, k]
                if self.effect is not None:
                    table[f"effect_{name}"] = self.effect[:, k]
        frame = pd.DataFrame(table)
        return frame.sort_values("rank", kind="stable").reset_index(drop=True)

    def to_dict(self, command: list[str] | None = None) -> dict[str, Any]:
        """The stable JSON document of `--json` (NaN becomes null)."""
        rows = []
        for i in np.argsort(self.rank, kind="stable"):
            row: dict[str, Any] = {
                "feature": self.features[i],
                "rank": int(self.rank[i]),
                "importance": finite_or_none(self.importance[i]),
                "sd": finite_or_none(self.sd[i]),
                "columns": self.columns[i],
            }
            if self.per_output is not None:
                row["per_output"] = {
                    name: finite_or_none(self.per_output[i, k])
                    for k, name in enumerate(self.outputs)
                }
            if self.effect is not None:
                row["effect"] = {
                    name: finite_or_none(self.effect[i, k]) for k, name in enumerate(self.outputs)
                }
            if self.repeat_importances is not None:
                row["repeats"] = [finite_or_none(v) for v in self.repeat_importances[i]]
            rows.append(row)
        return {
            "method": self.method,
            "task": self.task,
            "units": self.units,
            "metric": self.metric,
            "greater_is_better": self.greater_is_better,
            "baseline_score": finite_or_none(self.baseline_score),
            "repeats": self.repeats,
            "seed": self.seed,
            "n_rows": self.n_rows,
            "n_dropped_targets": self.n_dropped,
            "outputs": self.outputs,
            "baseline": self.baseline,
            "completeness": self.completeness,
            "features": rows,
            "provenance": provenance(command, self.inputs, self.seed),
        }

    def to_json(self, command: list[str] | None = None) -> str:
        return json.dumps(self.to_dict(command), indent=2, allow_nan=False) + "\n"


def finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------- features and groups
@dataclass
class _Features:
    """The units importance is reported for: names, their input columns, encoded indices."""

    names: list[str]
    columns: list[list[str]]
    indices: list[Indices]


def feature_units(model: TrainedModel, groups: Mapping[str, Sequence[str]] | None) -> _Features:
    """Input columns, or the named groups followed by every column in no group."""
    slices = model.preprocessor.input_slices()
    if not groups:
        return _Features(list(slices), [[n] for n in slices], list(slices.values()))
    names, columns, indices = [], [], []
    for group, members in groups.items():
        unknown = [c for c in members if c not in slices]
        if unknown:
            raise DataError(
                f"--group-features: group '{group}' names column(s) that are not model inputs: "
                f"{', '.join(repr(c) for c in unknown[:10])}; the inputs are the model's "
                "feature columns (see `mlpcli explain --json`)."
            )
        if group in slices and list(members) != [group]:
            raise DataError(
                f"--group-features: group name '{group}' is also an input column; rename it."
            )
        names.append(group)
        columns.append(list(members))
        indices.append(np.unique(np.concatenate([slices[c] for c in members])))
    grouped = {c for members in groups.values() for c in members}
    for name, idx in slices.items():
        if name not in grouped:
            names.append(name)
            columns.append([name])
            indices.append(idx)
    return _Features(names, columns, indices)


def read_groups(path: str | Path) -> dict[str, list[str]]:
    """Read `--group-features FILE`: group name -> input columns.

    TOML (`.toml`): one key per group, `mapk = ["ERK_N", "pERK_N", "MEK_N"]`.
    CSV or TSV (tab for `.tsv`/`.tab`): a header `group,column`, then one column per line;
    a group's lines need not be adjacent. A column may sit in several groups.
    """
    path = Path(path)
    raw = read_bounded(path, "--group-features", MAX_GROUPS_BYTES, DataError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"--group-features '{path}': not UTF-8 text.") from None
    reader = _GROUP_READERS.get(path.suffix.lower(), _groups_from_table)
    groups = reader(text, path)
    if not groups:
        raise DataError(f"--group-features '{path}': no groups found; see `mlpcli explain -h`.")
    return groups


def _groups_from_toml(text: str, path: Path) -> dict[str, list[str]]:
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        raise DataError(
            f"--group-features '{path}': nested too deeply to be a groups file."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(
            f"--group-features '{path}': not valid TOML ({shorten(exc, 200)})."
        ) from None
    groups: dict[str, list[str]] = {}
    for name, members in doc.items():
        if not (isinstance(members, list) and members and all(isinstance(m, str) for m in members)):
            raise DataError(
                f"--group-features '{path}': group '{name}' must be a non-empty list of column "
                f'names, e.g. {name} = ["colA", "colB"].'
            )
        groups[name] = list(dict.fromkeys(members))
    return groups


def _groups_from_table(text: str, path: Path) -> dict[str, list[str]]:
    sep = TABLE_SEPARATORS.get(table_extension(path), ",")
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=sep) if any(f.strip() for f in r)]
    header = [f.strip().lower() for f in rows[0]] if rows else []
    if header != ["group", "column"]:
        raise DataError(
            f"--group-features '{path}': the first line must be the header 'group{sep}column' "
            f"(got {sep.join(rows[0]) if rows else 'an empty file'!r})."
        )
    groups: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(
                f"--group-features '{path}': row {line} must hold a group and a column name, "
                f"got {sep.join(row)!r}."
            )
        members = groups.setdefault(row[0].strip(), [])
        if row[1].strip() not in members:
            members.append(row[1].strip())
    return groups


_GROUP_READERS: dict[str, Callable[[str, Path], dict[str, list[str]]]] = {
    ".toml": _groups_from_toml,
}


# --------------------------------------------------------------------------- outputs of the network
def output_names(encoder: TargetEncoder) -> list[str]:
    """One name per network output: class labels (binary: the positive class), target names."""
    names = encoder.labels if encoder.classification else encoder.targets
    return names[len(names) - encoder.n_outputs :]


def output_scale(encoder: TargetEncoder) -> Floats:
    """Per output, original units per network unit: the target std for regression, else 1."""
    if encoder.classification:
        return np.ones(encoder.n_outputs)
    zero = np.zeros((1, encoder.n_outputs))
    delta = encoder.decode(zero + 1.0) - encoder.decode(zero)
    scale: Floats = np.asarray(delta, dtype=np.float64)[0]
    return scale


def output_units(encoder: TargetEncoder) -> str:
    return "probability" if encoder.classification else "target units"
