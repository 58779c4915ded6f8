"""`mlpcli cv` and `mlpcli tune`: cross-validated estimates and hyperparameter searches, run in
parallel on this machine (joblib) or on a dask cluster. Both take every `train` option."""

from __future__ import annotations

import functools
import json
import signal
import sys
from contextlib import closing
from typing import Annotated, Any

import typer

from mlpcli.cli.common import (
    app,
    catch_signals,
    errors_to_exit_codes,
    live_training,
    make_reporter,
    resolve_settings,
    use_cache,
)
from mlpcli.cli.options import (
    OUTPUT,
    Backend,
    CacheDir,
    ConfigFile,
    JsonFlag,
    LogFormat,
    NJobs,
    NoCache,
    OutOfCore,
    Quiet,
    Repeats,
    Scheduler,
    ShipData,
    TrainingData,
    completion,
    metric_option,
    out_option,
    with_settings_options,
)


@app.command()
@errors_to_exit_codes
@with_settings_options()
def cv(
    data: TrainingData,
    *,
    folds: Annotated[
        int,
        typer.Option(
            "--folds",
            "-k",
            help="Number of folds K: stratified by class, grouped with --group.",
            rich_help_panel="Cross-validation",
        ),
    ] = 5,
    repeats: Repeats = 1,
    n_jobs: NJobs = 1,
    backend: Backend = "local",
    scheduler: Scheduler = None,
    ship_data: ShipData = False,
    out: Annotated[
        str | None, out_option("Write mean, sd and per-fold values of every metric as JSON.")
    ] = None,
    oof_out: Annotated[
        str | None,
        typer.Option(
            help="Write each sample's out-of-fold prediction per repeat as CSV.",
            metavar="FILE",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    as_json: JsonFlag = False,
    config: ConfigFile = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    out_of_core: OutOfCore = "auto",
    quiet: Quiet = False,
    log_format: LogFormat = "text",
    options: dict[str, Any],
) -> None:
    r"""Cross-validate a network: mean ± sd of every evaluation metric over K folds.

    Preprocessing is fitted on each fold's training rows only;
    early stopping uses rows split off them (--valid-fraction).
    The same --seed gives the same results whatever --n-jobs or --backend.

    Example:

        mlpcli cv sample_data/expression.csv --target subtype --id sample_id \
            --folds 5 --repeats 3 --n-jobs -1 --out cv.json --oof-out oof.csv
    """
    from mlpcli import crossval
    from mlpcli.cli import tables
    from mlpcli.outputs import STDOUT, check_paths

    reporter = make_reporter(quiet, log_format)
    use_cache(cache_dir, no_cache)
    settings = resolve_settings(options, config)
    check_paths(
        {"DATA": data, "--valid-file": settings.data.valid_file, "--config": config},
        {"--out": out, "--oof-out": oof_out, "--json": STDOUT if as_json else None},
    )
    with catch_signals(), closing(reporter):
        result = crossval.cross_validate(
            data,
            settings,
            folds,
            repeats,
            n_jobs=n_jobs,
            backend=backend,
            scheduler=scheduler,
            ship_data=ship_data,
            predictions=oof_out is not None,
            on_progress=functools.partial(reporter.task, "fold"),
            out_of_core=out_of_core,
        )
        written = crossval.write_outputs(result, out, oof_out)
    reporter.table(tables.cv_table(result, written))
    compared = result.baselines()
    if compared is not None:
        reporter.table(tables.baselines_table(compared))
        for hint in compared["hints"]:
            reporter.message(f"Hint: {hint}")
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")


@app.command()
@errors_to_exit_codes
@with_settings_options()
def tune(
    data: TrainingData,
    *,
    space: Annotated[
        str,
        typer.Option(
            "--space",
            help="TOML search space: train option names as keys; a list of values spans a "
            'grid, a table like {distribution = "loguniform", low = 1e-4, high = 0.1} '
            "is sampled by --search random.",
            metavar="FILE",
            show_default=False,
            rich_help_panel="Search",
        ),
    ],
    search: Annotated[
        str,
        typer.Option(
            help="grid (every combination) or random.",
            metavar="NAME",
            rich_help_panel="Search",
            autocompletion=completion("mlpcli.tuning", "SEARCHES"),
        ),
    ] = "grid",
    n_iter: Annotated[
        int,
        typer.Option(help="Candidates drawn by --search random.", rich_help_panel="Search"),
    ] = 10,
    cv: Annotated[
        int | None,
        typer.Option(
            "--cv",
            help="Score by K-fold cross-validation (default: on the validation split).",
            rich_help_panel="Search",
        ),
    ] = None,
    repeats: Repeats = 1,
    metric: Annotated[
        str | None,
        metric_option(
            "Metric that ranks the candidates (default: accuracy; r2 for regression).",
            rich_help_panel="Search",
        ),
    ] = None,
    n_jobs: NJobs = 1,
    backend: Backend = "local",
    scheduler: Scheduler = None,
    ship_data: ShipData = False,
    results_csv: Annotated[
        str | None,
        typer.Option(
            help="Write the ranked candidates as CSV: rank, parameters, mean, sd, seconds.",
            metavar="FILE",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    results_json: Annotated[
        str | None,
        typer.Option(
            help="Write the ranked candidates, per-fold scores and the space as JSON.",
            metavar="FILE",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    out: Annotated[
        str | None,
        out_option(
            "Refit the best candidate as train would and save it here; its metadata "
            "records the search."
        ),
    ] = None,
    as_json: JsonFlag = False,
    config: ConfigFile = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    out_of_core: OutOfCore = "auto",
    quiet: Quiet = False,
    log_format: LogFormat = "text",
    options: dict[str, Any],
) -> None:
    r"""Search hyperparameters: score every candidate of a space and rank them.

    Candidates share the folds (or the validation split) and the random streams,
    so they differ only by their parameters.

    Example:

        mlpcli tune sample_data/expression.csv --target subtype \
            --id sample_id --space space.toml --cv 5 --n-jobs -1 \
            --results-csv tune.csv --out best.npz
    """
    from mlpcli import tuning
    from mlpcli.cli import tables
    from mlpcli.outputs import STDOUT, check_paths

    reporter = make_reporter(quiet, log_format)
    use_cache(cache_dir, no_cache)
    settings = resolve_settings(options, config)
    outputs = {"--results-csv": results_csv, "--results-json": results_json, "--out": out}
    check_paths(
        {"DATA": data, "--space": space, "--config": config},
        {**outputs, "--json": STDOUT if as_json else None},
    )
    search_space = tuning.read_space(space, settings)
    tuning.warn_overridden(search_space, options)
    with catch_signals() as signals:
        with closing(reporter):
            result = tuning.search(
                data,
                settings,
                search_space,
                search=search,
                n_iter=n_iter,
                cv=cv,
                repeats=repeats,
                metric=metric,
                n_jobs=n_jobs,
                backend=backend,
                scheduler=scheduler,
                ship_data=ship_data,
                on_progress=functools.partial(reporter.task, "task"),
                out_of_core=out_of_core,
            )
        written = tuning.write_results(result, results_csv, results_json)
        reporter.table(tables.tune_table(result, written))
        if out is not None and not _refit(data, result, out, reporter, signals, out_of_core):
            raise typer.Exit(128 + (signals.signum or signal.SIGINT))
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")


def _refit(data: str, result: Any, out: str, reporter: Any, signals: Any, out_of_core: str) -> bool:
    """Train and save the best candidate; False if interrupted (nothing written)."""
    from mlpcli import pipeline, tuning
    from mlpcli.cli import tables

    announce = f"Refitting candidate {result.best().index + 1} on the data."
    with live_training(signals, reporter, announce) as hooks:
        outcome = tuning.refit(data, result, **hooks, out_of_core=out_of_core)
        reporter.stopped(outcome.result)
    if outcome.result.stop_reason == "interrupted":
        reporter.warning("Interrupted: no model written.")
        return False
    outcome.written = pipeline.write_outputs(outcome, out)
    reporter.table(tables.train_summary(outcome, "Refit summary"))
    return True
