"""Explain's entry points (method registry, option checks, reading the data) and its files
(the importance table, the plot)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpcli import data, metrics, option_parsers
from mlpcli.errors import DataError, UsageError, choose, install_hint
from mlpcli.explain.common import (
    LOG,
    ExplainFiles,
    ExplainOptions,
    Explanation,
    read_data,
    read_groups,
)
from mlpcli.explain.gradients import RULES, gradient_saliency, integrated_gradients
from mlpcli.explain.permutation import permutation_importance
from mlpcli.outputs import atomic_path, sha256_file
from mlpcli.trained import TrainedModel, load_trained

# --------------------------------------------------------------------------- entry points
#: method name -> function(model, frame, options) -> Explanation.
METHODS: dict[str, Callable[[TrainedModel, pd.DataFrame, ExplainOptions], Explanation]] = {
    "permutation": permutation_importance,
    "gradient": gradient_saliency,
    "integrated-gradients": integrated_gradients,
}

#: option -> the methods that use it (an option given for another method is an error).
_OPTION_METHODS: dict[str, tuple[str, ...]] = {
    "metric": ("permutation",),
    "repeats": ("permutation",),
    "groups": ("permutation", "integrated-gradients"),
    "steps": ("integrated-gradients",),
    "rule": ("integrated-gradients",),
    "baseline": ("integrated-gradients",),
}
_FLAGS = {"groups": "--group-features"}


def check_options(options: ExplainOptions) -> None:
    """Refuse bad values and options that the chosen method would ignore."""
    choose("method", options.method, METHODS)
    for name, methods in _OPTION_METHODS.items():
        if getattr(options, name) is not None and options.method not in methods:
            flag = _FLAGS.get(name, option_parsers.flag(name))
            raise UsageError(
                f"{flag} applies to --method {' or '.join(methods)}, not {options.method}."
            )
    if options.repeats is not None and options.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {options.repeats}.")
    if options.steps is not None and options.steps < 2:
        raise UsageError(f"--steps must be at least 2, got {options.steps}.")
    if options.rule is not None:
        choose("integration rule", options.rule, RULES)
    if (options.backend != "local" or options.scheduler) and options.method != "permutation":
        raise UsageError(
            f"--backend and --scheduler apply to --method permutation, not {options.method}."
        )
    if options.n_jobs == 0:
        raise UsageError("--n-jobs must be a positive count, or -1 for every core; got 0.")
    if options.metric is not None:
        metrics.get(options.metric)


def explain(model: TrainedModel, frame: pd.DataFrame, options: ExplainOptions) -> Explanation:
    """Importances of the model's input columns on the rows of a raw table."""
    check_options(options)
    if len(frame) == 0:
        raise DataError("The data has no rows to explain.")
    return METHODS[options.method](model, frame, options)


def explain_files(
    model_path: str,
    data_path: str,
    options: ExplainOptions,
    *,
    groups_path: str | None = None,
    baseline_path: str | None = None,
    sep: str | None = None,
    decimal: str | None = None,
    transpose: bool | None = None,
    out_of_core: str = "off",
) -> Explanation:
    """`mlpcli explain` as a function: load the model, read the tables, explain, record inputs.
    `out_of_core` (auto|on|off, `outofcore.wanted`) explains a table on disk by permutation
    without holding it (`ondisk`)."""
    from mlpcli import outofcore

    ooc = outofcore.wanted(data_path, out_of_core, sep, "explained")
    if groups_path is not None:
        options = dataclasses.replace(options, groups=read_groups(groups_path))
    check_options(options)
    model = load_trained(model_path)
    if ooc:
        return _explain_on_disk(model, model_path, data_path, options, groups_path,
                                sep, decimal, transpose)  # fmt: skip
    table = read_data(model, data_path, sep, decimal, transpose)
    inputs = {str(model_path): sha256_file(model_path), table.source: table.sha256}
    if data_path != "-":
        files = ExplainFiles(
            str(model_path), inputs[str(model_path)], data_path, table.sha256, sep, decimal,
            transpose,
        )  # fmt: skip
        options = dataclasses.replace(options, files=files)
    if groups_path is not None:
        inputs[str(groups_path)] = sha256_file(groups_path)
    if baseline_path is not None:
        baseline = read_data(model, baseline_path, sep, decimal, transpose)
        inputs[baseline.source] = baseline.sha256
        options = dataclasses.replace(options, baseline=baseline.frame)
    warn_if_training_data(model, table)
    result = explain(model, table.frame, options)
    result.inputs = inputs
    return result


def _explain_on_disk(
    model: TrainedModel,
    model_path: str,
    data_path: str,
    options: ExplainOptions,
    groups_path: str | None,
    sep: str | None,
    decimal: str | None,
    transpose: bool | None,
) -> Explanation:
    """`explain_files` out of core: permutation importance only, run in this process."""
    from mlpcli import overlap, predicting
    from mlpcli.explain.ondisk import permutation_on_disk

    if options.method != "permutation":
        raise UsageError(
            f"--method {options.method} does not work out of core; use --method permutation "
            "or pass --out-of-core off."
        )
    if options.n_jobs != 1 or options.backend != "local":
        LOG.warning(
            "Out of core, explain runs its permutations in this process (one pass over the "
            "rows per feature and repeat): --n-jobs and --backend are not used."
        )
    settings = predicting.model_settings(model, sep, decimal, transpose, data_path)
    result, sha256 = permutation_on_disk(model, data_path, settings, options)
    result.inputs = {str(model_path): sha256_file(model_path), data_path: sha256}
    if groups_path is not None:
        result.inputs[str(groups_path)] = sha256_file(groups_path)
    # By checksum only: the IDs of every row are not gathered.
    warning = overlap.check(model.metadata, data_path, sha256, None).warning("explain")
    if warning:
        LOG.warning(warning)
    return result


def warn_if_training_data(model: TrainedModel, table: data.Table) -> None:
    """The loud `overlap` warning when the explained table holds the model's training rows:
    importances then describe what the model memorised as much as what generalises."""
    from mlpcli import overlap

    ids = model.id_columns
    frame = table.frame
    values = (
        overlap.row_ids([frame[c].tolist() for c in ids])
        if ids and all(c in frame.columns for c in ids)
        else None
    )
    warning = overlap.check(model.metadata, table.source, table.sha256, values).warning("explain")
    if warning:
        LOG.warning(warning)


# --------------------------------------------------------------------------- files
def write_table(result: Explanation, path: str, option: str = "--out") -> None:
    """A table in the format its name says, as predict writes them (CSV, TSV, compressed),
    written atomically; `-` writes CSV to stdout."""
    from mlpcli.data.write import output_format

    frame = result.to_frame()
    if path == "-":
        import sys

        frame.to_csv(sys.stdout, index=False)
        return
    sep, opener = output_format(path, option)
    with atomic_path(path, option) as tmp, opener(tmp) as stream:
        frame.to_csv(stream, sep=sep, index=False)


def check_outputs(out: str | None, plot: str | None) -> None:
    """Fail before any work when `--out` names no table format (as predict's `--out`) or
    `--plot` no image format."""
    from mlpcli.data.write import output_format

    if out is not None and out != "-":
        output_format(out, "--out")
    if plot is not None:
        check_plot(plot)


def check_plot(path: str) -> None:
    """Fail before any work when matplotlib is missing or the format is unknown."""
    canvas = _canvas_class()
    formats = canvas(_figure_class()()).get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise UsageError(
            f"--plot '{path}': unknown image format '{suffix}'; use one of: "
            f"{', '.join(sorted(formats))}."
        )


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError(
            f"--plot needs matplotlib, which is not installed: {install_hint('plot')}."
        ) from None
    return Figure


def _canvas_class() -> Any:
    _figure_class()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg


def plot(result: Explanation, path: str, top: int = 20) -> None:
    """A ranked horizontal bar chart of the top features with ±sd error bars."""
    Figure, Canvas = _figure_class(), _canvas_class()
    frame = result.to_frame().head(top)
    height = 1.2 + 0.28 * len(frame)
    figure = Figure(figsize=(7.0, height))
    Canvas(figure)
    ax = figure.add_subplot()
    positions = np.arange(len(frame))[::-1]
    ax.barh(positions, frame["importance"], xerr=frame["sd"], color="#4c72b0", capsize=2)
    ax.set_yticks(positions, labels=frame["feature"])
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel(result.units)
    ax.set_title(f"mlpcli explain: {result.method}, top {len(frame)}")
    figure.tight_layout()
    suffix = Path(path).suffix.lower().lstrip(".")
    with atomic_path(path, "--plot") as tmp:
        figure.savefig(tmp, format=suffix)
