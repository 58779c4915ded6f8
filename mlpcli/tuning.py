"""Hyperparameter search over `train` options: grid or random, scored by cross-validation or by
the validation split, run in parallel through `parallel.Executor` (joblib, or a dask cluster).

A search space is a TOML file whose keys are `train` option names (`hidden`, `lr`,
`weight_decay` or `weight-decay`):

    hidden = ["16", "64,32"]                                  # a list spans a grid
    lr = {distribution = "loguniform", low = 1e-4, high = 1e-1}  # sampled by --search random
    epochs = 50                                               # a single value: fixed

Values go through the same parsers as the command line, so anything `train` accepts works.
Every candidate shares the folds and the per-fold random streams, so candidates differ only by
their parameters, and the winner's score equals `mlpcli cv` of the same options.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpcli import config, crossval, fitting, metrics, outofcore, parallel, pipeline, prepare
from mlpcli.config import Settings
from mlpcli.errors import DivergenceError, UsageError, choose
from mlpcli.limits import MAX_CONFIG_BYTES, read_toml
from mlpcli.option_parsers import flag
from mlpcli.outputs import atomic_path, provenance, write_text
from mlpcli.training import EpochRecord

LOG = logging.getLogger("mlpcli")


# --------------------------------------------------------------------------- distributions
@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float
    name = "uniform"

    def sample(self, rng: np.random.Generator) -> Any:
        return float(rng.uniform(self.low, self.high))

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.name, "low": self.low, "high": self.high}

    def examples(self) -> list[Any]:
        """Values to check against the option's parser: the bounds."""
        return [self.sample_type(self.low), self.sample_type(self.high)]

    @staticmethod
    def sample_type(x: float) -> Any:
        return x


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A float whose logarithm is uniform on [log low, log high] (learning rates, decay)."""

    name = "loguniform"

    def sample(self, rng: np.random.Generator) -> Any:
        return float(np.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclass(frozen=True)
class IntUniform(Uniform):
    """A whole number drawn uniformly from low..high, both included."""

    name = "int"

    def sample(self, rng: np.random.Generator) -> Any:
        return int(rng.integers(int(self.low), int(self.high) + 1))

    @staticmethod
    def sample_type(x: float) -> Any:
        return int(x)


@dataclass(frozen=True)
class Choice:
    """One of `values`, each equally likely; in a grid, every value."""

    values: tuple[Any, ...]
    name = "choice"

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.name, "values": list(self.values)}

    def examples(self) -> list[Any]:
        return list(self.values)


Distribution = Uniform | Choice


def _bounds(kind: type[Uniform]) -> Callable[[str, dict[str, Any]], Distribution]:
    def build(where: str, spec: dict[str, Any]) -> Distribution:
        _expect_keys(where, spec, {"distribution", "low", "high"})
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (TypeError, ValueError):
            raise UsageError(f"{where}: low and high must be numbers; got {spec}.") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise UsageError(f"{where}: needs finite low < high; got low={low}, high={high}.")
        if kind is LogUniform and low <= 0:
            raise UsageError(f"{where}: loguniform needs low > 0; got low={low}.")
        if kind is IntUniform and not (low.is_integer() and high.is_integer()):
            raise UsageError(f"{where}: int needs whole low and high; got {low}, {high}.")
        return kind(low, high)

    return build


def _choice(where: str, spec: dict[str, Any]) -> Distribution:
    _expect_keys(where, spec, {"distribution", "values"})
    values = spec["values"]
    if not isinstance(values, list) or not values:
        raise UsageError(f"{where}: choice needs a non-empty list of values; got {values!r}.")
    return Choice(tuple(values))


def _expect_keys(where: str, spec: dict[str, Any], keys: set[str]) -> None:
    missing, extra = keys - set(spec), set(spec) - keys
    if missing or extra:
        raise UsageError(
            f"{where}: a {spec['distribution']} table takes exactly "
            f"{', '.join(sorted(keys))}; got {', '.join(sorted(spec))}."
        )


#: `distribution = "..."` in a space table -> its builder from the table.
DISTRIBUTIONS: dict[str, Callable[[str, dict[str, Any]], Distribution]] = {
    "loguniform": _bounds(LogUniform),
    "uniform": _bounds(Uniform),
    "int": _bounds(IntUniform),
    "choice": _choice,
}


# --------------------------------------------------------------------------- the space
@dataclass
class SearchSpace:
    """Option name -> a list of values (grid) or a distribution (random search)."""

    source: str
    dimensions: dict[str, list[Any] | Distribution]

    @property
    def names(self) -> list[str]:
        return list(self.dimensions)

    def discrete(self) -> bool:
        return all(isinstance(d, list | Choice) for d in self.dimensions.values())

    def values(self, name: str) -> list[Any]:
        d = self.dimensions[name]
        return list(d.values) if isinstance(d, Choice) else d  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {
            name: d if isinstance(d, list) else d.to_dict() for name, d in self.dimensions.items()
        }


def read_space(path: str | Path, base: Settings) -> SearchSpace:
    """Read and check a search space: known `train` options, values their parsers accept.

    Tables like `[model]` may group keys, as in `--config` files.
    """
    where = f"--space {path}"
    doc = read_toml(path, "--space", MAX_CONFIG_BYTES)
    return space_from_dict(doc, base, where)


def space_from_dict(
    doc: Mapping[str, Any], base: Settings, where: str = "the space"
) -> SearchSpace:
    """A search space from parsed TOML; `where` prefixes the error messages."""
    fields = config.all_fields()
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        is_group = isinstance(value, dict) and "distribution" not in value
        items = value.items() if is_group and config.normalise_key(key) not in fields else []
        for raw, item in items or [(key, value)]:
            name = config.normalise_key(raw)
            if name in flat:
                raise UsageError(f"{where}: option '{name}' appears twice.")
            flat[name] = item
    if not flat:
        raise UsageError(f"{where}: the search space is empty; add options such as lr = [...].")
    config.resolve(dict.fromkeys(flat), base, source=where)  # unknown names, listing known ones
    data_options = [n for n in flat if fields[n][0] == "data"]
    if data_options:
        raise UsageError(
            f"{where}: {', '.join(map(flag, data_options))} choose(s) the data, which a "
            "search cannot vary; give data options on the command line."
        )
    dimensions = {name: _dimension(name, value, base, where) for name, value in flat.items()}
    return SearchSpace(where, dimensions)


def _dimension(name: str, value: Any, base: Settings, where: str) -> list[Any] | Distribution:
    """A list of values, or a distribution; the values (or bounds) must parse as the option."""
    dimension: list[Any] | Distribution
    if isinstance(value, dict):
        kind = value.get("distribution")
        if kind not in DISTRIBUTIONS:
            raise UsageError(
                f"{where}: the table of {name} needs distribution = one of "
                f"{', '.join(DISTRIBUTIONS)}; got {kind!r}."
            )
        dimension = DISTRIBUTIONS[kind](f"{where}: {name}", value)
        examples = dimension.examples()
    else:
        dimension = examples = value if isinstance(value, list) else [value]
        if not dimension:
            raise UsageError(f"{where}: {name} has an empty list of values.")
    for example in examples:
        _parse(name, example, base, where)
    return dimension


def _parse(name: str, value: Any, base: Settings, where: str) -> Settings:
    try:
        return config.resolve({name: value}, base, source=where)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None


def warn_overridden(space: SearchSpace, options: Mapping[str, Any]) -> None:
    """Say when a command-line option is also searched: the space's values win."""
    given = [n for n in space.names if options.get(n) is not None]
    if given:
        LOG.warning(
            f"{', '.join(map(flag, given))} given on the command line is searched in "
            f"{space.source}; the space's values are used."
        )


# --------------------------------------------------------------------------- candidates
def _grid(space: SearchSpace, n_iter: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    sampled = [n for n, d in space.dimensions.items() if not isinstance(d, list | Choice)]
    if sampled:
        kind = space.dimensions[sampled[0]].name  # type: ignore[union-attr]
        raise UsageError(
            f"{space.source}: '{sampled[0]}' is a {kind} distribution, which --search grid "
            "cannot enumerate; give a list of values or use --search random."
        )
    names = space.names
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(space.values(n) for n in names))
    ]


def _random(space: SearchSpace, n_iter: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise UsageError(f"--n-iter must be a whole number of at least 1, got {n_iter!r}.")
    if space.discrete():
        # Sample the grid without replacement: no candidate is trained twice.
        grid = _grid(space, n_iter, rng)
        if n_iter >= len(grid):
            LOG.info(f"--n-iter {n_iter} covers the whole grid of {len(grid)}: trying all.")
            return grid
        return [grid[int(i)] for i in rng.choice(len(grid), n_iter, replace=False)]
    return [
        {
            name: d.sample(rng) if not isinstance(d, list) else d[int(rng.integers(len(d)))]
            for name, d in space.dimensions.items()
        }
        for _ in range(n_iter)
    ]


#: `--search` -> how candidates are drawn from the space.
SEARCHES: dict[str, Callable[[SearchSpace, int, np.random.Generator], list[dict[str, Any]]]] = {
    "grid": _grid,
    "random": _random,
}


@dataclass(frozen=True)
class Candidate:
    """One configuration: its searched values as written, and the full settings."""

    index: int
    params: dict[str, Any]
    settings: Settings = field(repr=False)

    def describe(self) -> str:
        return " ".join(f"{k}={display(v)}" for k, v in self.params.items())


def display(value: Any) -> str:
    """A parameter value as a table cell: lists comma-joined, as on the command line."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def make_candidates(
    space: SearchSpace, base: Settings, search: str = "grid", n_iter: int = 10
) -> list[Candidate]:
    """All candidates, checked before any training: each option value parses, and each
    optimizer and schedule accepts the hyperparameters it is given."""
    draw = choose("search", search, SEARCHES)
    rng = parallel.stream(base.train.seed, crossval.SEARCH_STREAM)
    out = []
    for i, params in enumerate(draw(space, n_iter, rng)):
        candidate = Candidate(i, params, _parse_all(params, base, space.source))
        try:
            optimizer = fitting.build_optimizer(candidate.settings)
            fitting.build_schedule(candidate.settings, optimizer.lr)
        except UsageError as exc:
            raise UsageError(f"Candidate {i + 1} ({candidate.describe()}): {exc}") from None
        out.append(candidate)
    return out


def _parse_all(params: dict[str, Any], base: Settings, where: str) -> Settings:
    try:
        return config.resolve(params, base, source=where)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None


def encoding_key(settings: Settings) -> str:
    """The options the encoded folds depend on: candidates that agree on them share arrays
    (and, on dask, one scattered copy of them)."""
    t = settings.train
    parts = [settings.to_dict()["data"], settings.to_dict()["preprocess"]]
    return json.dumps([*parts, settings.model.dtype, t.class_weight, t.seed], sort_keys=True)


# --------------------------------------------------------------------------- the search
@dataclass
class TuneResult:
    """Every candidate's per-fold scores, ranked by the metric."""

    space: SearchSpace
    search: str
    metric: metrics.Metric
    cv: int | None
    repeats: int
    task: str
    settings: Settings
    candidates: list[Candidate]
    results: list[list[crossval.FoldResult]]
    inputs: dict[str, str]

    def rows(self) -> list[dict[str, Any]]:
        """One row per candidate, best first: rank, parameters, mean, sd, seconds, status."""
        rows = []
        for candidate, folds in zip(self.candidates, self.results, strict=True):
            errors = [r.error for r in folds if r.error is not None]
            summary = crossval.summarise([r.score for r in folds])
            status = "diverged" if errors else "ok" if summary["n"] else "undefined"
            rows.append(
                {
                    "rank": None,
                    "candidate": candidate.index + 1,
                    **candidate.params,
                    "metric": self.metric.name,
                    "mean": summary["mean"] if status == "ok" else None,
                    "sd": summary["sd"] if status == "ok" else None,
                    "n_scores": summary["n"],
                    "seconds": round(sum(r.seconds for r in folds), 3),
                    "status": status,
                    "error": errors[0] if errors else None,
                    "scores": summary["values"],
                }
            )
        sign = -1.0 if self.metric.greater_is_better else 1.0
        ranked = sorted(
            (row for row in rows if row["mean"] is not None),
            key=lambda row: (sign * row["mean"], row["candidate"]),
        )
        previous, rank = None, 0
        for position, row in enumerate(ranked, 1):
            if row["mean"] != previous:
                rank, previous = position, row["mean"]
            row["rank"] = rank
        unranked = [row for row in rows if row["rank"] is None]
        return ranked + unranked

    def best(self) -> Candidate | None:
        """The best candidate (the first one generated among ties), None if none scored."""
        top = self.rows()[0]
        return self.candidates[top["candidate"] - 1] if top["rank"] is not None else None

    def frame(self) -> pd.DataFrame:
        """The results table for CSV: parameters as on the command line."""
        table = pd.DataFrame(
            [{k: v for k, v in row.items() if k != "scores"} for row in self.rows()]
        )
        for name in self.space.names:
            table[name] = table[name].map(display)
        table["rank"] = table["rank"].astype("Int64")
        return table

    def record(self) -> dict[str, Any]:
        """The search as stored in a refitted model's metadata (`metadata["search"]`)."""
        best = self.best()
        top = self.rows()[0]
        return {
            "space": self.space.to_dict(),
            "source": self.space.source,
            "search": self.search,
            "scoring": f"{self.cv}-fold cross-validation" if self.cv else "validation split",
            "cv": self.cv,
            "repeats": self.repeats,
            "metric": self.metric.name,
            "greater_is_better": self.metric.greater_is_better,
            "n_candidates": len(self.candidates),
            "best": None
            if best is None
            else {
                "candidate": best.index + 1,
                "params": best.params,
                "mean": top["mean"],
                "sd": top["sd"],
            },
            "ranking": self.rows(),
        }

    def to_dict(self, command: list[str] | None = None) -> dict[str, Any]:
        return {
            "task": self.task,
            **self.record(),
            "settings": self.settings.to_dict(),
            "provenance": provenance(command, self.inputs, self.settings.train.seed),
        }


def search(
    path: str,
    settings: Settings,
    space: SearchSpace,
    *,
    search: str = "grid",
    n_iter: int = 10,
    cv: int | None = None,
    repeats: int = 1,
    metric: str | None = None,
    n_jobs: int = 1,
    backend: str = "local",
    scheduler: str | None = None,
    ship_data: bool = False,
    on_progress: Callable[[crossval.Progress], None] | None = None,
    out_of_core: str = "off",
) -> TuneResult:
    """Score every candidate of the space, by `cv`-fold cross-validation (repeated `repeats`
    times) or, without `cv`, on the validation split of `mlpcli train`. On a dask cluster
    that shares the file, workers rebuild the folds from it (`ship_data`: scatter them).
    Out of core (`out_of_core`: auto|on|off) each task builds its fold from the table cache,
    as `cv` and `train --out-of-core` do (`crossval.fold_out_of_core`)."""
    executor = parallel.Executor(backend, scheduler, n_jobs, ship_data)
    if cv is None and repeats != 1:
        raise UsageError("--repeats needs --cv K: the validation split is drawn once.")
    candidates = make_candidates(space, settings, search, n_iter)
    ooc = outofcore.wanted(path, out_of_core, settings.data.sep, "tuned")
    with executor:
        replay = parallel.LogReplay()
        by_key = {encoding_key(c.settings): c.settings for c in candidates}
        shipped: dict[str, list[Any]]
        if ooc:
            if cv is not None:
                crossval.check_cv_settings(settings)
            scan = outofcore.scan_table(path, settings)
            task, inputs = scan.task.task, {path: scan.entry.sha256}
            crossval.out_of_core_executor(executor, path, settings)
            shipped = {
                key: crossval.out_of_core_refs(path, scan.entry.sha256, s, cv, repeats)
                for key, s in by_key.items()
            }
        else:
            shared = _shared_folds(path, settings, candidates, cv, repeats, replay)
            first = next(iter(shared.values()))[0].prepared
            task, inputs = first.task.task, first.inputs
            sides = {f for c in candidates for f in parallel.side_files(c.settings)}
            shipped = dict(shared)
            if executor.by_path(path, *sorted(f for f in sides if f is not None)):
                sha = next(iter(first.inputs.values()))
                shipped = {
                    key: crossval.fold_refs(path, sha, s, cv, repeats, len(shared[key]))
                    for key, s in by_key.items()
                }
        scorer = crossval.check_metric(metric, task)
        plan = [(c, fold) for c in candidates for fold in shipped[encoding_key(c.settings)]]
        calls = [(c.settings, fold, scorer.name, False, False) for c, fold in plan]
        count = itertools.count(1)

        def on_done(i: int, result: crossval.FoldResult) -> None:
            replay(result.messages)
            if on_progress is not None:
                what = f"candidate {plan[i][0].index + 1}"
                what += f" fold {result.fold + 1}" if cv else ""
                what += f" repeat {result.repeat + 1}" if cv and repeats > 1 else ""
                done = next(count)
                on_progress(crossval.Progress(done, len(calls), what, scorer.name, result.score))

        if on_progress is not None:
            on_progress(crossval.Progress(0, len(calls), "start", scorer.name))
        scatter = [f for fs in shipped.values() for f in fs if isinstance(f, crossval.EncodedFold)]
        results = executor.map(crossval.run_fold, calls, scatter, on_done)
    per_candidate: list[list[crossval.FoldResult]] = [[] for _ in candidates]
    for (candidate, _), result in zip(plan, results, strict=True):
        per_candidate[candidate.index].append(result)
    return TuneResult(
        space,
        search,
        scorer,
        cv,
        repeats,
        task,
        settings,
        candidates,
        per_candidate,
        inputs,
    )


def _shared_folds(
    path: str,
    settings: Settings,
    candidates: list[Candidate],
    cv: int | None,
    repeats: int,
    replay: parallel.LogReplay,
) -> dict[str, list[crossval.EncodedFold]]:
    """The encoded folds of each distinct encoding among the candidates: from a table read
    once (cv), or by `train`'s split (validation)."""
    if cv is None:

        def folds_of(s: Settings) -> list[crossval.EncodedFold]:
            return [crossval.validation_fold(path, s, replay)]
    else:
        crossval.check_cv_settings(settings)
        loaded = prepare.load_table(path, settings)

        def folds_of(s: Settings) -> list[crossval.EncodedFold]:
            return crossval.encode_folds(loaded, s, cv, repeats, replay)

    keys = {encoding_key(c.settings): c.settings for c in candidates}
    if cv is None and path == "-" and len(keys) > 1:
        raise UsageError(
            "With preprocessing options in the space, the validation split reads DATA once per "
            "encoding, and stdin (-) can be read only once: give DATA as a file, or use --cv K."
        )
    return {key: folds_of(s) for key, s in keys.items()}


def refit(
    path: str,
    result: TuneResult,
    *,
    callback: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    command: list[str] | None = None,
    out_of_core: str = "off",
) -> pipeline.TrainOutcome:
    """Train the best candidate as `mlpcli train` would (`out_of_core` as train's); its
    metadata records the search."""
    best = result.best()
    if best is None:
        statuses = sorted({row["status"] for row in result.rows()})
        raise DivergenceError(
            f"No candidate could be scored (status: {', '.join(statuses)}); nothing to refit. "
            "Lower the learning rates in the space or choose another --metric."
        )
    outcome = pipeline.train(
        path, best.settings, callback, should_stop, on_start, command, out_of_core=out_of_core
    )
    outcome.metadata["search"] = result.record()
    return outcome


def write_results(
    result: TuneResult,
    csv_path: str | None = None,
    json_path: str | None = None,
    command: list[str] | None = None,
) -> list[str]:
    """The ranked results table as CSV and as JSON (with the space, settings and provenance),
    each written atomically; returns the paths written."""
    written = []
    if csv_path is not None:
        with atomic_path(csv_path, "--results-csv") as tmp:
            result.frame().to_csv(tmp, index=False)
        written.append(csv_path)
    if json_path is not None:
        doc = json.dumps(result.to_dict(command), indent=2, allow_nan=False)
        write_text(json_path, doc + "\n", "--results-json")
        written.append(json_path)
    return written
