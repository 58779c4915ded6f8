"""`mlpcli predict`, `evaluate` and `inspect`: use a saved model on raw tables, or describe it.

Results go to stdout or files; tables, warnings and progress to stderr. `inspect` imports
neither pandas nor the training code, so it answers in a fraction of a second.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from mlpcli.cli.common import (
    app,
    catch_signals,
    errors_to_exit_codes,
    make_reporter,
    use_cache,
)
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
    completion,
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
        ),
    ] = True,
    threshold: Threshold = None,
    spread: Annotated[
        bool,
        typer.Option(
            "--spread",
            help="Add the ensemble members' standard deviation per row: spread_<label> per "
            "class, or spread (regression); needs a model trained with --ensemble K.",
            rich_help_panel="Output",
        ),
    ] = False,
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

    reporter = make_reporter(quiet, log_format)
    use_cache(cache_dir, no_cache)
    check_paths({"MODEL": model, "DATA": data}, {"--out": out}, stdout=["--out"])
    options = predicting.PredictOptions(
        ids=tuple(id) if id else None,
        proba=proba,
        threshold=threshold,
        spread=spread,
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
        typer.Option(
            help="Image format of --plots: png, svg or pdf.",
            metavar="NAME",
            rich_help_panel=OUTPUT,
            autocompletion=completion("mlpcli.plotting", "FORMATS"),
        ),
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
    from mlpcli.cli import tables
    from mlpcli.outputs import STDOUT, check_paths, to_json, write_text

    reporter = make_reporter(quiet, log_format)
    use_cache(cache_dir, no_cache)
    images = _plot_paths(plots, plot_format)
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
            keep_arrays=plots is not None,
        )
        text = to_json(evaluation.document)
        if out is not None and out != "-":
            write_text(out, text, "--out")
        if plots is not None:
            _draw_plots(evaluation, plots, plot_format, reporter)
    if json_out or out == "-":
        typer.echo(text, nl=False)
    for table in tables.evaluation_tables(evaluation.document):
        reporter.table(table)
    for note in evaluation.document["metrics"].get("notes", []):
        reporter.message(f"Note: {note}")
    reporter.close()


def _plot_paths(plots: str | None, plot_format: str) -> list[str]:
    """The images --plots will write (checked before any work), after checking matplotlib."""
    if plots is None:
        return []
    from mlpcli import plotting
    from mlpcli.errors import choose

    plotting.require_matplotlib("--plots")
    choose("image format (--plot-format)", plot_format, plotting.FORMATS)
    return plotting.evaluation_plot_paths(plots, plot_format)


def _draw_plots(evaluation: Any, folder: str, plot_format: str, reporter: Any) -> None:
    from mlpcli import plotting

    document = evaluation.document
    for path in plotting.evaluation_plots(
        document["task"],
        evaluation.y_true,
        evaluation.outputs,
        evaluation.labels,
        folder,
        plot_format,
        document["provenance"],
    ):
        reporter.message(f"Wrote {path}")


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
    from mlpcli.cli import inspectcache

    kept_as = inspectcache.key(model, json_out, rows)  # taken before the file is read
    text = _inspect_text(model, json_out, rows)
    inspectcache.keep(kept_as, model, json_out, rows, text, inspectcache.exporter_modules())
    # The description is this command's result, so it goes to stdout (`inspect m.npz | less`).
    sys.stdout.write(text)


def _inspect_text(model: str, json_out: bool, rows: int) -> str:
    """What `inspect` prints: the JSON document, or the tables drawn for this terminal."""
    from mlpcli.cli import tables
    from mlpcli.cli.display import stderr_console
    from mlpcli.describe import describe_model
    from mlpcli.outputs import to_json

    document = describe_model(model)
    if json_out:
        return to_json(document)
    console = stderr_console(stderr=False)
    with console.capture() as captured:  # the very text console.print writes, kept as is
        for renderable in tables.inspect_renderables(document, rows, console.width):
            console.print(renderable)
    return captured.get()
