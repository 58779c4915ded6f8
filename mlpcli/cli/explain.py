"""`mlpcli explain`: which input columns drive a trained model."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlpcli.cli.common import app, catch_signals, errors_to_exit_codes, make_reporter
from mlpcli.cli.options import (
    OUTPUT,
    Backend,
    JsonFlag,
    LogFormat,
    ModelArg,
    ModelDecimal,
    ModelSep,
    NJobs,
    OutOfCore,
    Quiet,
    Scheduler,
    ShipData,
    Transpose,
    completion,
    data_argument,
    metric_option,
    out_option,
    repeats_option,
    seed_option,
)

METHOD_HELP = (
    "permutation (drop in --metric when a column is shuffled; needs the target), gradient "
    "(mean |d output / d feature| in the feature's units), or integrated-gradients "
    "(attributions from a baseline; completeness reported)."
)
GROUPS_HELP = (
    "Permute (or, for integrated-gradients, sum) named groups of columns together. TOML: "
    'one line per group, mapk = ["ERK_N", "pERK_N"]; or CSV/TSV with the header group,column '
    "and one column per line. Columns in no group are reported on their own."
)


@app.command()
@errors_to_exit_codes
def explain(
    model: ModelArg,
    data: Annotated[
        str,
        data_argument(
            "Table with the model's feature columns (CSV/TSV, maybe compressed; - for "
            "stdin); permutation also needs the target column(s)."
        ),
    ],
    *,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            help=METHOD_HELP,
            metavar="NAME",
            autocompletion=completion("mlpcli.explain", "METHODS"),
        ),
    ] = "permutation",
    out: Annotated[
        str | None,
        out_option(
            "Write the importances: .csv, or .tsv/.tab/.txt for TSV, optionally .gz/.bz2/.xz/"
            ".zst; - for CSV on stdout. Columns feature, "
            "importance, sd, rank, then effect and per-class columns where they apply."
        ),
    ] = None,
    json_out: JsonFlag = False,
    top: Annotated[
        int,
        typer.Option(
            min=1,
            help="Features shown in the table on stderr and the plot.",
            rich_help_panel=OUTPUT,
        ),
    ] = 20,
    plot: Annotated[
        str | None,
        typer.Option(
            help="Ranked bar chart with error bars (.png, .pdf, .svg); needs the plot "
            'extra: pip install ".\\[plot]" in the mlpcli checkout.',
            metavar="FILE",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        metric_option(
            "permutation: metric to lose \\[default: the training validation metric].",
            rich_help_panel="Permutation",
        ),
    ] = None,
    repeats: Annotated[
        int | None,
        repeats_option(
            "permutation: shuffles per column \\[default: 10].", rich_help_panel="Permutation"
        ),
    ] = None,
    seed: Annotated[
        int,
        seed_option(
            "permutation: random seed; the same seed gives the same result.",
            rich_help_panel="Permutation",
        ),
    ] = 0,
    n_jobs: NJobs = 1,
    backend: Backend = "local",
    scheduler: Scheduler = None,
    ship_data: ShipData = False,
    group_features: Annotated[
        str | None,
        typer.Option(help=GROUPS_HELP, metavar="FILE", rich_help_panel="Permutation"),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            help="integrated-gradients: integration steps \\[default: 64].",
            rich_help_panel="Integrated gradients",
        ),
    ] = None,
    rule: Annotated[
        str | None,
        typer.Option(
            help="integrated-gradients: gauss-legendre or trapezoid \\[default: gauss-legendre].",
            metavar="NAME",
            autocompletion=completion("mlpcli.explain", "RULES"),
            rich_help_panel="Integrated gradients",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="integrated-gradients: a one-row table to start from \\[default: the training "
            "medians].",
            metavar="FILE",
            rich_help_panel="Integrated gradients",
        ),
    ] = None,
    sep: ModelSep = None,
    decimal: ModelDecimal = None,
    transpose: Transpose = None,
    out_of_core: OutOfCore = "auto",
    quiet: Quiet = False,
    log_format: LogFormat = "text",
) -> None:
    """Rank the input columns of a trained model by how much it relies on them.

    DATA is read like the training table: columns by name, stored preprocessing, imputation.

    One-hot blocks and missing indicators count as their column. Explain held-out rows.

    Permutation repeats run in parallel with --n-jobs, or on a dask cluster with --backend dask
    --scheduler ADDRESS; the same --seed gives the same result either way.

    Example:

        mlpcli explain model.npz test.csv --repeats 20 --out importance.csv
    """
    from mlpcli import explain as lib
    from mlpcli.cli import tables
    from mlpcli.outputs import STDOUT, check_paths

    reporter = make_reporter(quiet, log_format)
    check_paths(
        {"MODEL": model, "DATA": data, "--group-features": group_features, "--baseline": baseline},
        {"--json": STDOUT if json_out else None, "--out": out, "--plot": plot},
        stdout=["--json", "--out"],
    )
    lib.check_outputs(out, plot)
    options = lib.ExplainOptions(
        method=method,
        metric=metric,
        repeats=repeats,
        seed=seed,
        n_jobs=n_jobs,
        backend=backend,
        scheduler=scheduler,
        ship_data=ship_data,
        steps=steps,
        rule=rule,
    )
    with catch_signals():
        result = lib.explain_files(
            model,
            data,
            options,
            groups_path=group_features,
            baseline_path=baseline,
            sep=sep,
            decimal=decimal,
            transpose=transpose,
            out_of_core=out_of_core,
        )
        _write(result, out, plot, top)
    if json_out:
        typer.echo(result.to_json(), nl=False)
    reporter.table(tables.explain_table(result, top))
    reporter.close()


def _write(result: Any, out: str | None, plot: str | None, top: int) -> None:
    """The importance table (--out) and bar chart (--plot) asked for."""
    from mlpcli import explain as lib

    if out is not None:
        lib.write_table(result, out)
    if plot is not None:
        lib.plot(result, plot, top)
