"""`mlpcli train`: from a table on disk to a model file, metrics and a live progress display."""

from __future__ import annotations

import signal
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
    CONFIGURATION,
    OUTPUT,
    Backend,
    CacheDir,
    ConfigFile,
    LogEvery,
    LogFormat,
    NJobs,
    NoCache,
    OutOfCore,
    Quiet,
    Scheduler,
    ShipData,
    TrainingData,
    data_argument,
    out_option,
    seed_option,
    sep_option,
    with_settings_options,
)
from mlpcli.errors import UsageError


@app.command()
@errors_to_exit_codes
@with_settings_options()
def train(
    data: TrainingData,
    *,
    out: Annotated[str, out_option("Model file to write (.npz).")],
    metrics_out: Annotated[
        str | None,
        typer.Option(help="Write final metrics as JSON.", metavar="FILE", rich_help_panel=OUTPUT),
    ] = None,
    history_out: Annotated[
        str | None,
        typer.Option(
            help="Write per-epoch history as CSV.", metavar="FILE", rich_help_panel=OUTPUT
        ),
    ] = None,
    split_out: Annotated[
        str | None,
        typer.Option(
            help="Write each sample's ID and its set (train/valid) as CSV.",
            metavar="FILE",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    config: ConfigFile = None,
    save_on_interrupt: Annotated[
        bool,
        typer.Option(
            "--save-on-interrupt",
            help="On SIGINT/SIGTERM, save the best weights so far (marked interrupted).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="Save the best model so far and the training state to this file.",
            metavar="FILE",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            min=1, help="Write --checkpoint every N epochs.", rich_help_panel=OUTPUT, metavar="N"
        ),
    ] = 1,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue from a --checkpoint file (its settings; flags given now override).",
            metavar="FILE",
            rich_help_panel=CONFIGURATION,
        ),
    ] = None,
    test_file: Annotated[
        str | None,
        typer.Option(
            help="A held-out table scored after training; its metrics are reported as 'test', "
            "apart from the validation ones.",
            metavar="FILE",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    out_of_core: OutOfCore = "auto",
    n_jobs: NJobs = 1,
    backend: Backend = "local",
    scheduler: Scheduler = None,
    ship_data: ShipData = False,
    quiet: Quiet = False,
    log_format: LogFormat = "text",
    log_every: LogEvery = 10,
    options: dict[str, Any],
) -> None:
    r"""Train a network on a table and save one model file.

    One network trains in this process. With --preset realmlp_td --ensemble K
    --ensemble-groups G, the G groups of members train as separate tasks
    (--n-jobs, or --backend dask --scheduler ADDRESS) and are stacked into one model.

    Example:

        mlpcli train sample_data/expression.csv --target subtype \
            --id sample_id --out model.npz
    """
    from mlpcli import parallel, pipeline
    from mlpcli.cli import tables
    from mlpcli.outputs import commit_staged

    reporter = make_reporter(quiet, log_format, log_every)
    use_cache(cache_dir, no_cache)
    settings = resolve_settings(options, config, _resumed_settings(resume))
    side = {"metrics_out": metrics_out, "history_out": history_out, "split_out": split_out}
    inputs = {"--test-file": test_file, "--config": config, "--resume": resume}
    _check_paths(data, settings, inputs, {"out": out, "checkpoint": checkpoint, **side})
    with catch_signals() as signals:
        with live_training(signals, reporter) as hooks:
            outcome = pipeline.train(
                data,
                settings,
                checkpoint=checkpoint,
                checkpoint_every=checkpoint_every,
                resume=resume,
                test_file=test_file,
                out_of_core=out_of_core,
                placement=parallel.Placement(backend, scheduler, n_jobs, ship_data),
                **hooks,
            )
            reporter.stopped(outcome.result)
        interrupted = outcome.result.stop_reason == "interrupted"
        if interrupted and not save_on_interrupt:
            reporter.warning(
                "Interrupted: no model written (use --save-on-interrupt to keep "
                "the best weights so far)."
            )
        else:
            outcome.written = pipeline.write_outputs(outcome, out, interrupted=interrupted, **side)
        reporter.table(tables.train_summary(outcome))
        for hint in outcome.metadata.get("baselines", {}).get("hints", []):
            reporter.message(f"Hint: {hint}")
        reporter.finish(_finish_record(outcome))
    if interrupted:
        commit_staged()  # the model asked for by --save-on-interrupt, if any
        raise typer.Exit(128 + (signals.signum or signal.SIGINT))


def _resumed_settings(resume: str | None) -> Any:
    """A checkpoint's settings, under the flags given now; None without --resume."""
    if resume is None:
        return None
    from mlpcli import config, modelfile

    return config.Settings.from_dict(modelfile.read_metadata(resume)["settings"])


def _check_paths(
    data: str, settings: Any, inputs: dict[str, str | None], outputs: dict[str, str | None]
) -> None:
    from mlpcli.outputs import check_paths

    check_paths(
        {"DATA": data, "--valid-file": settings.data.valid_file, **inputs},
        {"--" + name.replace("_", "-"): path for name, path in outputs.items()},
        # A checkpoint is read in full before training; continuing to checkpoint into it is fine.
        may_share=[("--checkpoint", "--resume")],
    )


def _finish_record(outcome: Any) -> dict[str, Any]:
    """The run's last event (`finish` in --log-format jsonl)."""
    result = outcome.result
    return {
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "best_value": result.best_value,
        "monitor": result.monitor,
        "seconds": round(result.seconds, 3),
        "written": outcome.written,
    }


#: An old `--stratify COL` leaves COL behind as an extra argument: allowed, then named.
_EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": False}


@app.command(context_settings=_EXTRA_ARGS)
@errors_to_exit_codes
def split(
    ctx: typer.Context,
    data: Annotated[
        str,
        data_argument("Table to split (CSV/TSV, maybe compressed, Parquet, Feather or Excel)."),
    ],
    *,
    test_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of rows (or groups) in the test table.")
    ] = 0.2,
    group: Annotated[
        str | None,
        typer.Option(help="Column of groups (patients) kept whole on one side.", metavar="COL"),
    ] = None,
    stratify: Annotated[
        bool,
        typer.Option(
            "--stratify", help="Keep the class proportions of --target on both sides.", metavar=""
        ),
    ] = False,
    target: Annotated[
        str | None,
        typer.Option(help="The target column --stratify stratifies on.", metavar="COL"),
    ] = None,
    seed: Annotated[int, seed_option("Random seed: the same seed, the same split.")] = 0,
    sep: Annotated[str | None, sep_option("from the extension, else sniffed")] = None,
    out_dir: Annotated[
        str, typer.Option(help="Folder for the train, test and listing files.", metavar="DIR")
    ] = ".",
    quiet: Quiet = False,
    log_format: LogFormat = "text",
) -> None:
    r"""Split a table into DATA.train and DATA.test files, in DATA's format, and a listing.

    Cells are copied as written and rows keep their order; `<stem>.split.csv` lists each row
    number (and group) with its set. Train on one file and report on the other.

    Example:

        mlpcli split cohort.csv --test-fraction 0.2 --group patient \
            --stratify --target subtype
    """
    from mlpcli import tablesplit

    column = _stratify_on(stratify, target, ctx.args)
    reporter = make_reporter(quiet, log_format)
    with catch_signals():
        result = tablesplit.split_table(
            data, test_fraction, out_dir, group=group, stratify=column, seed=seed, sep=sep
        )
    reporter.message(
        f"Wrote {result.n_train} training row(s) to {result.train}, {result.n_test} test row(s) "
        f"to {result.test} and the listing to {result.listing}."
    )
    reporter.close()


def _stratify_on(stratify: bool, target: str | None, extra: list[str]) -> str | None:
    """The column `split` stratifies on: --target, with the --stratify flag (which took the
    column itself until this release: that form is named, not misread)."""
    if stratify and extra:
        raise UsageError(
            "--stratify is a flag and takes no column; name the target with --target COL "
            "(e.g. --stratify --target subtype)."
        )
    if stratify and target is None:
        raise UsageError("--stratify needs --target COL: the column whose classes both keep.")
    if extra:
        raise UsageError(f"split takes one DATA; got also {', '.join(map(repr, extra))}.")
    if target is not None and not stratify:
        raise UsageError("--target is the column --stratify uses; add --stratify or drop --target.")
    return target
