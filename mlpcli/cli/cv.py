"""`mlpcli cv` and `mlpcli tune`: cross-validated estimates and hyperparameter searches, run in
parallel on this machine (joblib) or on a dask cluster. Both take every `train` option."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Annotated, Any

import typer

from mlpcli.cli.common import (
    app,
    catch_signals,
    errors_to_exit_codes,
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
    Quiet,
    Repeats,
    Scheduler,
    TrainingData,
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
    out: Annotated[
        str | None, out_option("Write mean, sd and per-fold values of every metric as JSON.")
    ] = None,
    oof_out: Annotated[
        str | None,
        typer.Option(
            help="Write each sample's out-of-fold prediction per repeat as CSV.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    as_json: JsonFlag = False,
    config: ConfigFile = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
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
    from mlpcli.outputs import STDOUT, check_paths

    reporter = make_reporter(quiet, log_format)
    use_cache(cache_dir, no_cache)
    settings = resolve_settings(options, config)
    check_paths(
        {"DATA": data, "--valid-file": settings.data.valid_file, "--config": config},
        {"--out": out, "--oof-out": oof_out, "--json": STDOUT if as_json else None},
    )
    progress = task_progress(reporter, "fold")
    with catch_signals():
        try:
            result = crossval.cross_validate(
                data,
                settings,
                folds,
                repeats,
                n_jobs=n_jobs,
                backend=backend,
                scheduler=scheduler,
                predictions=oof_out is not None,
                on_progress=progress,
            )
        finally:
            progress.close()
        written = crossval.write_outputs(result, out, oof_out)
    reporter.table(_cv_table(result, written))
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
            show_default=False,
            rich_help_panel="Search",
        ),
    ],
    search: Annotated[
        str,
        typer.Option(help="grid (every combination) or random.", rich_help_panel="Search"),
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
    results_csv: Annotated[
        str | None,
        typer.Option(
            help="Write the ranked candidates as CSV: rank, parameters, mean, sd, seconds.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    results_json: Annotated[
        str | None,
        typer.Option(
            help="Write the ranked candidates, per-fold scores and the space as JSON.",
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
    quiet: Quiet = False,
    log_format: LogFormat = "text",
    options: dict[str, Any],
) -> None:
    r"""Search hyperparameters: score every candidate of a space and rank them.

    Candidates share the folds (or the validation split) and the random streams,
    so they differ only by their parameters.

    Example:

        mlpcli tune sample_data/expression.csv --target subtype --id sample_id \
            --space space.toml --cv 5 --n-jobs -1 --results-csv tune.csv \
            --out best.npz
    """
    from mlpcli import tuning
    from mlpcli.outputs import STDOUT, check_paths

    reporter = make_reporter(quiet, log_format)
    use_cache(cache_dir, no_cache)
    settings = resolve_settings(options, config)
    check_paths(
        {"DATA": data, "--space": space, "--config": config},
        {
            "--results-csv": results_csv,
            "--results-json": results_json,
            "--out": out,
            "--json": STDOUT if as_json else None,
        },
    )
    search_space = tuning.read_space(space, settings)
    tuning.warn_overridden(search_space, options)
    progress = task_progress(reporter, "task")
    with catch_signals() as signals:
        try:
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
                on_progress=progress,
            )
        finally:
            progress.close()
        written = tuning.write_results(result, results_csv, results_json)
        reporter.table(_tune_table(result, written))
        if out is not None and not _refit(data, result, out, reporter, signals):
            raise typer.Exit(128 + (signals.signum or signal.SIGINT))
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")


def _refit(data: str, result: Any, out: str, reporter: Any, signals: Any) -> bool:
    """Train and save the best candidate; False if interrupted (nothing written)."""
    from mlpcli import pipeline, tuning

    def on_start(info: dict[str, Any]) -> None:
        signals.training = True
        reporter.message(f"Refitting candidate {result.best().index + 1} on the data.")
        reporter.start(info)

    try:
        outcome = tuning.refit(
            data,
            result,
            callback=reporter.epoch,
            should_stop=signals.stop_requested,
            on_start=on_start,
        )
    finally:
        signals.training = False
        reporter.close()
    if outcome.result.stop_reason == "interrupted":
        reporter.warning("Interrupted: no model written.")
        return False
    for path in pipeline.write_outputs(outcome, out):
        reporter.message(f"Wrote {path}.")
    return True


# --------------------------------------------------------------------------- display
def _cv_table(result: Any, written: list[str]) -> Any:
    from rich.table import Table

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
        table.add_row(name, _fmt(s["mean"]), _fmt(s["sd"]), f"{s['n']}/{total}")
    table.caption = "wrote " + ", ".join(written) if written else None
    table.caption_justify = "left"
    return table


def _tune_table(result: Any, written: list[str], top: int = 10) -> Any:
    from rich.table import Table

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

    for row in rows[:top]:
        cells = [_fmt(row["rank"]), *(display(row[n]) for n in result.space.names)]
        table.add_row(
            *cells, _fmt(row["mean"]), _fmt(row["sd"]), _fmt(row["seconds"]), row["status"]
        )
    table.caption = "wrote " + ", ".join(written) if written else None
    table.caption_justify = "left"
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --------------------------------------------------------------------------- progress
class _Silent:
    """No progress (--quiet)."""

    def __init__(self, reporter: Any, noun: str) -> None:
        self.console = reporter.console
        self.noun = noun

    def __call__(self, event: Any) -> None:
        pass

    def close(self) -> None:
        pass


class _Plain(_Silent):
    """About twenty plain lines over the run, for logs and pipes."""

    def __call__(self, event: Any) -> None:
        step = max(1, event.total // 20)
        if event.done == 0 or (event.done % step and event.done != event.total):
            return
        value = "" if event.value is None else f" {event.metric}={event.value:.4g}"
        self.console.print(
            f"{self.noun} {event.done}/{event.total} done: {event.what}{value}",
            markup=False,
            highlight=False,
        )


class _Jsonl(_Silent):
    """One JSON object per finished task on stderr (--log-format jsonl)."""

    def __call__(self, event: Any) -> None:
        doc = {"event": self.noun, "time": round(time.time(), 3), **vars(event)}
        sys.stderr.write(json.dumps(doc) + "\n")
        sys.stderr.flush()


class _Bar(_Silent):
    """A rich progress bar over the tasks, with the last finished one's score."""

    progress: Any = None

    def __call__(self, event: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if self.progress is None:
            self.progress = Progress(
                TextColumn(f"[bold]{self.noun}s"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[last]}"),
                console=self.console,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.noun, total=event.total, last="")
        last = "" if event.value is None else f"{event.what}: {event.metric} {event.value:.4g}"
        self.progress.update(self.task, completed=event.done, last=last)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def task_progress(reporter: Any, noun: str) -> _Silent:
    """The progress display that matches the reporter: a bar on a terminal, plain lines in
    logs, JSON lines with --log-format jsonl, nothing with --quiet."""
    from mlpcli.cli.display import JsonlReporter, PlainReporter, RichReporter

    kinds: dict[type, type[_Silent]] = {
        RichReporter: _Bar,
        PlainReporter: _Plain,
        JsonlReporter: _Jsonl,
    }
    return kinds.get(type(reporter), _Silent)(reporter, noun)
