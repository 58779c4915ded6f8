"""`mlpcli predict`, `evaluate` and `inspect`: use a saved model on raw tables, or describe it.

Results go to stdout or files; tables, warnings and progress to stderr. `inspect` imports
neither pandas nor the training code, so it answers in a fraction of a second.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from mlpcli.cli.common import app, catch_signals, errors_to_exit_codes, use_cache
from mlpcli.cli.options import (
    OUTPUT,
    CacheDir,
    ChunkSize,
    JsonFlag,
    LogFormat,
    ModelArg,
    ModelDecimal,
    ModelSep,
    NoCache,
    Quiet,
    Threshold,
    Transpose,
    data_argument,
    out_option,
)


@app.command()
@errors_to_exit_codes
def predict(
    model: ModelArg,
    data: Annotated[
        str,
        data_argument(
            "Table with the model's feature columns, in any order, extra columns ignored "
            "(CSV/TSV, maybe compressed; - for stdin)."
        ),
    ],
    *,
    out: Annotated[
        str,
        out_option(
            "Predictions file: .csv or .tsv, optionally .gz/.bz2/.xz/.zst; - for CSV on "
            "stdout. Written atomically.",
            show_default=True,
        ),
    ] = "-",
    id: Annotated[
        list[str] | None,
        typer.Option(
            "--id",
            help="ID column(s) to copy into the predictions; repeatable \\[default: the ones "
            "named in training].",
            metavar="COL",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    proba: Annotated[
        bool,
        typer.Option(
            help="Add a proba_<label> column per class (classification).",
            rich_help_panel=OUTPUT,
            metavar="",
        ),
    ] = True,
    threshold: Threshold = None,
    chunk_size: ChunkSize = None,
    sep: ModelSep = None,
    decimal: ModelDecimal = None,
    transpose: Transpose = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    log_format: LogFormat = "text",
) -> None:
    """Predict the target for every row of a table with a saved model.

    Columns: the ID column(s) (else `row`, 1-based), `prediction` (`prediction_<target>` for
    several targets) as label strings or in the target's units, then `proba_<label>`. Rows stay
    in input order; the table is streamed in chunks, so memory stays flat.

    Example:

        mlpcli predict model.npz new_samples.csv --out predictions.csv
    """
    from mlpcli import predicting
    from mlpcli.outputs import check_paths

    reporter = _reporter(quiet, log_format)
    use_cache(cache_dir, no_cache)
    check_paths({"MODEL": model, "DATA": data}, {"--out": out}, stdout=["--out"])
    options = predicting.PredictOptions(
        ids=tuple(id) if id else None,
        proba=proba,
        threshold=threshold,
        chunk_size=chunk_size,
        sep=sep,
        decimal=decimal,
        transpose=transpose,
    )
    with catch_signals():
        summary = predicting.predict_file(model, data, out, options)
    where = "stdout" if out == "-" else out
    reporter.message(
        f"Predicted {summary.n_rows} row(s) of '{summary.source}' into {where} in "
        f"{summary.seconds:.2f} s ({summary.rows_per_second:,.0f} rows/s)."
    )
    reporter.close()


@app.command()
@errors_to_exit_codes
def evaluate(
    model: ModelArg,
    data: Annotated[
        str,
        data_argument(
            "Table with the model's feature and target columns (CSV/TSV, maybe compressed; "
            "- for stdin)."
        ),
    ],
    *,
    json_out: JsonFlag = False,
    out: Annotated[str | None, out_option("Write the JSON document to a file.")] = None,
    plots: Annotated[
        str | None,
        typer.Option(
            help="Folder to draw the confusion matrix, ROC and precision-recall curves in "
            "(regression: predicted vs true, residuals); needs the plot extra (pip "
            'install ".\\[plot]" in the mlpcli checkout).',
            metavar="DIR",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    plot_format: Annotated[
        str,
        typer.Option(help="Image format of --plots: png, svg or pdf.", rich_help_panel=OUTPUT),
    ] = "png",
    threshold: Threshold = None,
    chunk_size: ChunkSize = None,
    sep: ModelSep = None,
    decimal: ModelDecimal = None,
    transpose: Transpose = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    log_format: LogFormat = "text",
) -> None:
    """Score a saved model on a table whose target column(s) are known.

    Classification: accuracy, balanced accuracy, precision/recall/F1 per class and averaged,
    MCC, ROC AUC, average precision, log loss, Brier score, confusion matrix. Regression: MSE,
    RMSE, MAE, median absolute error, R^2, explained variance, Pearson r, Spearman rho.
    Rows with a missing target are left out and counted.

    Example:

        mlpcli evaluate model.npz test.csv --json > metrics.json
    """
    from mlpcli import predicting
    from mlpcli.errors import choose
    from mlpcli.outputs import STDOUT, check_paths, write_text

    reporter = _reporter(quiet, log_format)
    use_cache(cache_dir, no_cache)
    images: list[str] = []
    if plots is not None:
        from mlpcli import plotting

        plotting.require_matplotlib("--plots")
        choose("image format (--plot-format)", plot_format, plotting.FORMATS)
        images = plotting.evaluation_plot_paths(plots, plot_format)
    check_paths(
        {"MODEL": model, "DATA": data},
        {"--json": STDOUT if json_out else None, "--out": out, "--plots": images},
        stdout=["--json", "--out"],
    )
    with catch_signals():
        evaluation = predicting.evaluate_table(
            model,
            data,
            threshold=threshold,
            sep=sep,
            decimal=decimal,
            chunk_size=chunk_size,
            command=list(sys.argv),
            transpose=transpose,
        )
        document = evaluation.document
        text = predicting.to_json(document)
        if out is not None and out != "-":
            write_text(out, text, "--out")
        if plots is not None:
            for path in plotting.evaluation_plots(
                document["task"],
                evaluation.y_true,
                evaluation.outputs,
                evaluation.labels,
                plots,
                plot_format,
                document["provenance"],
            ):
                reporter.message(f"Wrote {path}")
    if json_out or out == "-":
        typer.echo(text, nl=False)
    title = (
        f"{document['task']} metrics on {document['n_evaluated']} row(s) of '{document['data']}'"
    )
    if document["n_missing_target"]:
        title += f" ({document['n_missing_target']} without a target left out)"
    if document.get("data_overlap", {}).get("training_data"):
        title = f"Training data — not a test: {title}"
    for table in report_tables(document["metrics"], title):
        reporter.table(table)
    _notes(reporter, document["metrics"])
    reporter.close()


@app.command()
@errors_to_exit_codes
def inspect(
    model: ModelArg,
    *,
    json_out: JsonFlag = False,
    rows: Annotated[
        int,
        typer.Option(
            min=0,
            help="Feature rows shown in the preprocessing table (0: all; --json has all).",
            rich_help_panel=OUTPUT,
        ),
    ] = 20,
) -> None:
    """Show everything a model file holds, without loading any data.

    Architecture and parameter counts, optimizer and hyperparameters, preprocessing of every
    feature, labels, training summary, validation metrics, and the learning curve.

    Example:

        mlpcli inspect model.npz
    """
    from mlpcli import predicting

    document = predicting.describe_model(model)
    if json_out:
        typer.echo(predicting.to_json(document), nl=False)
        return
    from mlpcli.cli.display import stderr_console

    # The description is this command's result, so it goes to stdout (`inspect m.npz | less`).
    console = stderr_console(stderr=False)
    for table in _inspect_tables(document, rows):
        console.print(table)
    curve = predicting.learning_curve(document["history"], width=min(60, console.width - 14))
    if curve:
        console.print("Learning curve (loss per epoch)", style="bold")
        console.print("\n".join(curve), markup=False, highlight=False)
    validation = document["metrics"].get("validation")
    if validation:
        for table in report_tables(validation, "Validation metrics (at training time)"):
            console.print(table)


# --------------------------------------------------------------------------- rendering
def _reporter(quiet: bool, log_format: str) -> Any:
    from mlpcli.cli.common import make_reporter

    return make_reporter(quiet, log_format)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) if value else "-"
    return str(value)


def _table(title: str, header: list[str] | None, rows: list[list[Any]]) -> Any:
    """Numbers right-aligned under a header; a headerless table is `what: value` pairs."""
    from rich.table import Table

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
        table.add_row(*(_fmt(v) for v in row))
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


_MULTILABEL = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "mcc",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier",
    "support",
)


def _by_metric(title: str, columns: dict[str, dict[str, Any]], keys: list[str]) -> Any:
    """One row per metric and one column per target: narrow enough for any terminal."""
    rows = [[key, *(values.get(key) for values in columns.values())] for key in keys]
    return _table(title, ["metric", *columns], rows)


def _multilabel_tables(report: dict[str, Any], title: str) -> list[Any]:
    summary = _pairs(title, report, ("subset_accuracy", "hamming_loss", "threshold"))
    columns = {**report["per_target"], "macro average": report["macro_avg"]}
    return [summary, _by_metric("Per target", columns, list(_MULTILABEL))]


def _regression_tables(report: dict[str, Any], title: str) -> list[Any]:
    columns = dict(report["per_target"])
    if len(columns) > 1:
        columns["average"] = report["average"]
    return [_by_metric(title, columns, list(report["average"]))]


#: report task -> rich tables of the report.
REPORT_TABLES: dict[str, Callable[[dict[str, Any], str], list[Any]]] = {
    "binary": _classification_tables,
    "multiclass": _classification_tables,
    "multilabel": _multilabel_tables,
    "regression": _regression_tables,
}


def report_tables(report: dict[str, Any], title: str) -> list[Any]:
    """Rich tables of a metrics report (as `metrics.*_report` return it)."""
    return REPORT_TABLES[report["task"]](report, title)


def _notes(reporter: Any, report: dict[str, Any]) -> None:
    for note in report.get("notes", []):
        reporter.message(f"Note: {note}")


def _inspect_tables(doc: dict[str, Any], limit: int) -> list[Any]:
    from mlpcli.calibration import summary_rows

    arch = doc["architecture"]
    target = doc["target"]
    overview = {
        "model": doc["model"],
        "task": doc["task"],
        "why": doc["task_reason"],
        "targets": target["targets"],
        "labels": target["labels"] if doc["task"] != "regression" else None,
        "ID columns": doc["id_columns"],
        "inputs": f"{doc['preprocessing']['n_columns']} columns -> {arch['n_inputs']} values",
        "parameters": arch["n_parameters"],
        "loss": arch["loss"],
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
    hyper.update({k: v for k, v in doc["hyperparameters"].items() if k not in hyper})
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
        return [record["column"], "categorical", f"missing: {missing}", f"one-hot: {_fmt(levels)}"]
    imputation = f"{record['impute']} = {record['impute_value']:.4g}"
    if record["missing_indicator"]:
        imputation += " + indicator"
    scaling = f"{record['scaling']}: (x - {record['center']:.4g}) / {record['scale']:.4g}"
    if record["log1p"]:
        scaling = "log1p, then " + scaling
    return [record["column"], "numeric", imputation, scaling]
