"""Every rich table mlpcli shows: training summary, cv and tune results, explanations, metric
reports and the description of a model file, with its learning curve drawn in text. The
commands build their result, then ask for its table here; numbers go through `display.fmt`,
the one formatter."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from rich.table import Table

from mlpcli.cli.display import fmt
from mlpcli.metric_reports import MULTILABEL_FLOATS

if TYPE_CHECKING:
    from mlpcli.explain import Explanation


# --------------------------------------------------------------------------- train
def summary_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, fmt(value))
    return table


def train_summary(outcome: Any, title: str = "Training summary") -> Table:
    from mlpcli import baselines
    from mlpcli.calibration import summary_rows

    result = outcome.result
    rows: list[tuple[str, Any]] = [
        ("task", outcome.prepared.task.task),
        ("epochs run", result.epochs_run),
        ("best epoch", result.best_epoch),
        ("stop reason", result.stop_reason),
        (f"best {result.monitor}", result.best_value),
    ]
    groups = outcome.metadata.get("training", {}).get("groups")
    if groups:
        best = ", ".join(str(g["best_epoch"]) for g in groups)
        rows.append(("ensemble groups", f"{len(groups)} (best epochs {best}; above: group 1)"))
    for split in ("validation", "test", "train"):
        report = outcome.metrics.get(split)
        if report:
            for key in (
                "accuracy",
                "balanced_accuracy",
                "f1_macro",
                "roc_auc",
                "r2",
                "rmse",
                "mae",
            ):
                value = report.get(
                    key,
                    report.get("average", {}).get(key)
                    if isinstance(report.get("average"), dict)
                    else None,
                )
                if isinstance(value, float):
                    rows.append((f"{split} {key}", value))
    rows.extend(summary_rows(outcome.metadata))
    if "baselines" in outcome.metadata:
        rows.extend(baselines.summary_rows(outcome.metadata["baselines"]))
    rows.append(("time", f"{result.seconds:.2f} s"))
    rows.extend(("wrote", path) for path in outcome.written)
    return summary_table(title, rows)


# --------------------------------------------------------------------------- cv and tune
def cv_table(result: Any, written: list[str]) -> Table:
    grouping = "grouped, " if result.grouped else ""
    grouping += "stratified, " if result.stratified else ""
    table = Table(
        title=f"Cross-validation: {result.folds} folds x {result.repeats} repeat(s), "
        f"{grouping}{result.task}, {result.n_samples} samples",
        title_justify="left",
    )
    for name in ("metric", "mean", "sd", "folds"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    total = len(result.results)
    for name, s in result.summary().items():
        if name.startswith(("per_class.", "per_target.")):
            continue
        table.add_row(name, fmt(s["mean"]), fmt(s["sd"]), f"{s['n']}/{total}")
    table.caption = "wrote " + ", ".join(written) if written else None
    table.caption_justify = "left"
    return table


def baselines_table(compared: dict[str, Any]) -> Table:
    """cv's held-out score of the network next to the constant and linear baselines."""
    from mlpcli.baselines import CONSTANT_NAMES

    table = Table(
        title=f"Held-out {compared['metric']} next to baselines (--no-baselines to skip)",
        title_justify="left",
    )
    for name in ("model", "mean", "sd", "folds"):
        table.add_column(name, justify="left" if name == "model" else "right")
    names = {
        "network": "network",
        "constant": CONSTANT_NAMES[compared["constant_rule"]],
        "linear": "linear baseline (no hidden layer)",
    }
    for key, name in names.items():
        s = compared[key]
        table.add_row(name, fmt(s["mean"]), fmt(s["sd"]), str(s["n"]))
    gap = compared["gap"]
    table.caption = f"mean {gap['measure']}: {fmt(gap['value'])} (large above {gap['limit']:g})"
    table.caption_justify = "left"
    return table


def tune_table(result: Any, written: list[str], top: int = 10) -> Table:
    rows = result.rows()
    better = "higher" if result.metric.greater_is_better else "lower"
    scoring = f"{result.cv}-fold cv" if result.cv else "validation split"
    table = Table(
        title=f"Search: {result.search}, {len(rows)} candidate(s), {scoring}, "
        f"{result.metric.name} ({better} is better)"
        + (f"; best {top} shown" if len(rows) > top else ""),
        title_justify="left",
    )
    columns = ["rank", *result.space.names, "mean", "sd", "seconds", "status"]
    for name in columns:
        table.add_column(name, justify="right" if name != "status" else "left")
    from mlpcli.tuning import display

    def cell(value: Any) -> str:  # a sampled 0.032720011216120115 reads as 0.03272
        return fmt(value) if isinstance(value, float) else display(value)

    for row in rows[:top]:
        cells = [fmt(row["rank"]), *(cell(row[n]) for n in result.space.names)]
        table.add_row(*cells, fmt(row["mean"]), fmt(row["sd"]), fmt(row["seconds"]), row["status"])
    table.caption = "wrote " + ", ".join(written) if written else None
    table.caption_justify = "left"
    return table


# --------------------------------------------------------------------------- explain
def explain_table(result: Explanation, top: int) -> Table:
    frame = result.to_frame().head(top)
    title = f"Top {len(frame)} of {len(result.features)} features ({result.method}"
    if result.metric is not None:
        title += f"; baseline {result.metric} {result.baseline_score:.4g}"
    table = Table(title=title + ")", title_justify="left")
    columns = [c for c in ("rank", "feature", "importance", "sd", "effect") if c in frame]
    for name in columns:
        table.add_column(name, justify="left" if name == "feature" else "right")
    for row in frame[columns].itertuples(index=False):
        table.add_row(*(fmt(value) for value in row))
    return table


# --------------------------------------------------------------------------- evaluate and inspect
def _table(title: str, header: list[str] | None, rows: list[list[Any]]) -> Any:
    """Numbers right-aligned under a header; a headerless table is `what: value` pairs."""
    table = Table(title=title, title_justify="left", show_header=header is not None)
    for i, name in enumerate(header or ["", ""]):
        right = header is not None and i > 0
        table.add_column(
            name,
            justify="right" if right else "left",
            style="bold" if i == 0 else None,
            overflow="fold",
            no_wrap=header is not None,
        )
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    return table


def _pairs(title: str, values: dict[str, Any], keys: tuple[str, ...] | None = None) -> Any:
    chosen = keys if keys is not None else tuple(values)
    return _table(title, None, [[k, values.get(k)] for k in chosen if k in values])


_SUMMARY = (
    "accuracy",
    "balanced_accuracy",
    "positive_class",
    "sensitivity",
    "specificity",
    "mcc",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier",
    "threshold",
)


def _classification_tables(report: dict[str, Any], title: str) -> list[Any]:
    summary = {k: report[k] for k in _SUMMARY if report.get(k) is not None}
    for average in ("macro_avg", "weighted_avg"):
        for key in ("precision", "recall", "f1"):
            summary[f"{key} ({average[:-4]})"] = report[average][key]
    per_class = [
        [label, row["precision"], row["recall"], row["f1"], row["support"]]
        for label, row in report["per_class"].items()
    ]
    confusion = report["confusion_matrix"]
    matrix = [
        [label, *counts]
        for label, counts in zip(confusion["labels"], confusion["matrix"], strict=True)
    ]
    return [
        _pairs(title, summary),
        _table("Per class", ["class", "precision", "recall", "f1", "support"], per_class),
        _table(
            "Confusion matrix (rows: true class, columns: predicted)",
            ["true \\ predicted", *confusion["labels"]],
            matrix,
        ),
    ]


def _by_metric(title: str, columns: dict[str, dict[str, Any]], keys: list[str]) -> Any:
    """One row per metric and one column per target: narrow enough for any terminal."""
    rows = [[key, *(values.get(key) for values in columns.values())] for key in keys]
    return _table(title, ["metric", *columns], rows)


def _multilabel_tables(report: dict[str, Any], title: str) -> list[Any]:
    summary = _pairs(title, report, ("subset_accuracy", "hamming_loss", "threshold"))
    columns = {**report["per_target"], "macro average": report["macro_avg"]}
    return [summary, _by_metric("Per target", columns, [*MULTILABEL_FLOATS, "support"])]


def _regression_tables(report: dict[str, Any], title: str) -> list[Any]:
    columns = dict(report["per_target"])
    if len(columns) > 1:
        columns["average"] = report["average"]
    return [_by_metric(title, columns, list(report["average"]))]


#: task kind (`Task.kind`) -> rich tables of its metric report.
REPORT_TABLES: dict[str, Callable[[dict[str, Any], str], list[Any]]] = {
    "classification": _classification_tables,
    "multilabel": _multilabel_tables,
    "regression": _regression_tables,
}


def report_tables(report: dict[str, Any], title: str) -> list[Any]:
    """Rich tables of a metric report (as `metric_reports.*_report` return it)."""
    from mlpcli import task as tasks

    return REPORT_TABLES[tasks.get(report["task"]).kind](report, title)


def evaluation_tables(document: dict[str, Any]) -> list[Table]:
    """The tables of `evaluate`, titled with what was scored (and a warning on training data)."""
    title = (
        f"{document['task']} metrics on {document['n_evaluated']} row(s) of '{document['data']}'"
    )
    if document["n_missing_target"]:
        title += f" ({document['n_missing_target']} without a target left out)"
    if document.get("data_overlap", {}).get("training_data"):
        title = f"Training data — not a test: {title}"
    return report_tables(document["metrics"], title)


def _members(doc: dict[str, Any]) -> str:
    """` (K members, kind)` after the preset name of an ensemble model."""
    recipe = doc.get("recipe") or {}
    k = int(recipe.get("n_members", 1))
    return f" ({k} members, {recipe.get('ensemble', 'packed')})" if k > 1 else ""


def inspect_renderables(doc: dict[str, Any], limit: int, width: int) -> list[Any]:
    """What `inspect` prints: the model's tables, its learning curve, its validation metrics."""
    from rich.text import Text

    shown: list[Any] = list(inspect_tables(doc, limit))
    curve = learning_curve(doc["history"], width=min(60, width - 14))
    if curve:
        shown.append(Text("Learning curve (loss per epoch)", style="bold"))
        shown.append(Text("\n".join(curve)))
    validation = doc["metrics"].get("validation")
    if validation:
        shown.extend(report_tables(validation, "Validation metrics (at training time)"))
    return shown


def learning_curve(
    history: Sequence[Mapping[str, Any]], width: int = 60, height: int = 12
) -> list[str]:
    """Training (*) and validation (o) loss per epoch as lines of text for a terminal.

    A column stands for one epoch, or the mean of several when there are more epochs than
    `width`; '#' marks where both series fall on one cell, '^' the best epoch below the axis.
    """
    if not history:
        return []
    series = {
        key: np.array([_float(r.get(key)) for r in history]) for key in ("train_loss", "val_loss")
    }
    bins = np.array_split(np.arange(len(history)), min(width, len(history)))
    means = {key: np.array([_nanmean(values[b]) for b in bins]) for key, values in series.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in means.values()])
    if finite.size == 0:
        return []
    low, high = float(finite.min()), float(finite.max())
    span = high - low if high > low else 1.0
    grid = [[" "] * len(bins) for _ in range(height)]
    for key, mark in (("train_loss", "*"), ("val_loss", "o")):
        for x, value in enumerate(means[key]):
            if np.isfinite(value):
                y = round((high - value) / span * (height - 1))
                grid[y][x] = "#" if grid[y][x] not in (" ", mark) else mark
    ticks = {
        0: f"{high:.4g}",
        height - 1: f"{low:.4g}",
        (height - 1) // 2: f"{(high + low) / 2:.4g}",
    }
    pad = max(len(t) for t in ticks.values())
    lines = [f"{ticks.get(y, ''):>{pad}} |{''.join(row)}" for y, row in enumerate(grid)]
    lines.append(" " * pad + " +" + "-" * len(bins))
    epochs = [int(r.get("epoch", i + 1)) for i, r in enumerate(history)]
    first, last = str(epochs[0]), str(epochs[-1])
    lines.append(" " * (pad + 2) + first + last.rjust(max(len(bins) - len(first), len(last))))
    best = history[-1].get("best_epoch")
    legend = "* training loss   o validation loss"
    if isinstance(best, int) and best in epochs:
        column = next(x for x, b in enumerate(bins) if epochs.index(best) in b)
        lines.append(" " * (pad + 2 + column) + f"^ best epoch {best}")
    lines.append(" " * (pad + 2) + legend)
    return lines


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _nanmean(values: NDArray[np.float64]) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def inspect_tables(doc: dict[str, Any], limit: int) -> list[Any]:
    from mlpcli import describe
    from mlpcli.calibration import summary_rows

    arch = doc["architecture"]
    target = doc["target"]
    overview = {
        "model": doc["model"],
        "task": doc["task"],
        "why": doc["task_reason"],
        "preset": doc["preset"] + _members(doc),
        **({"auto choice": describe.auto_choice(doc["auto"])} if doc.get("auto") else {}),
        "targets": target["targets"],
        "labels": target["labels"] if doc["task"] != "regression" else None,
        "ID columns": doc["id_columns"],
        "inputs": f"{doc['preprocessing']['n_columns']} columns -> {arch['n_inputs']} values",
        "parameters": arch["n_parameters"],
        "loss": arch["loss"],
        **describe.settings_shown(
            {"init": doc["settings"].get("model", {}).get("init", arch["init"])},
            doc["resolved"].get("model", {}),
        ),
        "dtype": arch["dtype"],
        "format version": doc["format_version"],
        "export formats": ", ".join(f"{k} ({v})" for k, v in doc["export_formats"].items()),
    }
    if "scaling" in target:
        overview["target mean"] = target["scaling"]["mean"]
        overview["target std"] = target["scaling"]["std"]
    overview.update(summary_rows(doc))
    layers = [
        [
            layer["name"],
            f"{layer['inputs']} -> {layer['units']}",
            layer["activation"],
            layer["batchnorm"],
            layer["dropout"],
            layer["residual"],
            layer["n_parameters"],
        ]
        for layer in arch["layers"]
    ]
    layers.append(["total", "", "", "", "", "", arch["n_parameters"]])
    training = {k: v for k, v in doc["training"].items() if k not in ("inputs", "command")}
    for item in doc["training"].get("inputs", []):
        training[f"sha256 {item['path']}"] = item["sha256"]
    hyper = {"optimizer": doc["optimizer"].get("name")}
    hyper.update({k: v for k, v in doc["optimizer"].items() if k != "name"})
    train = doc["hyperparameters"]
    recipe = doc.get("recipe") or {}
    hidden = describe.settings_not_taken(train, recipe=bool(recipe))
    shown = describe.settings_shown(train, doc["resolved"].get("train", {}), hidden)
    hyper.update({k: v for k, v in shown.items() if k not in hyper})
    hyper.update({k: recipe[k] for k in describe.RECIPE_SHOWN if k in recipe and k not in hyper})
    features = doc["preprocessing"]["features"]
    shown = features if limit == 0 else features[:limit]
    feature_rows = [_feature_row(f) for f in shown]
    title = "Preprocessing"
    if len(shown) < len(features):
        title += f" (first {len(shown)} of {len(features)} columns; --rows 0 or --json for all)"
    return [
        _pairs("Model", overview),
        _table(
            "Architecture",
            ["layer", "units", "activation", "batchnorm", "dropout", "residual", "params"],
            layers,
        ),
        _pairs("Optimizer and hyperparameters", hyper),
        _table(title, ["column", "kind", "imputation", "scaling / encoding"], feature_rows),
        _pairs("Training", training),
    ]


def _feature_row(record: dict[str, Any]) -> list[Any]:
    if record["kind"] == "categorical":
        levels = record["levels"]
        missing = "own level" if "__missing__" in levels else "all zeros"
        encoding = f"{record.get('encoding', 'one-hot')}: {fmt(levels)}"  # or frequency
        return [record["column"], "categorical", f"missing: {missing}", encoding]
    imputation = f"{record['impute']} = {record['impute_value']:.4g}"
    if record["missing_indicator"]:
        imputation += " + indicator"
    scaling = f"{record['scaling']}: (x - {record['center']:.4g}) / {record['scale']:.4g}"
    if record["log1p"]:
        scaling = "log1p, then " + scaling
    return [record["column"], "numeric", imputation, scaling]
