"""The targets table of `bench/RESULTS.md`: one function per target of issue 16.

Each function takes the `Measured` of the run and returns its rows: (target, measured, verdict)
with verdict True (met), False (not met, the measured column says the gap) or None (not measured
in this run, the measured column says why). A function whose figures were not taken in this run
(an engine-only run, a comparator not installed) returns a row that says so, never nothing, so
every target of the issue shows in every report.

Adding a target: write its function here, decorated with `@target`, in the issue's order, and
put the figures it needs into `Measured.figures` from the section that measures them (engine
cases land in `Measured.cases` by themselves). One function per target keeps the engineers who
own different targets out of each other's lines.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Row = tuple[str, str, bool | None]


@dataclass
class Measured:
    """Everything one run of `bench/run.py` measured, as the target functions read it."""

    #: Engine case name -> its `CaseResult` (run.py), when engine cases ran.
    cases: dict[str, Any] = field(default_factory=dict)
    #: Free-form figures by the section that measured them: `figures["recipe"]`, ...
    figures: dict[str, Any] = field(default_factory=dict)


TARGETS: list[Callable[[Measured], list[Row]]] = []


def target(fn: Callable[[Measured], list[Row]]) -> Callable[[Measured], list[Row]]:
    TARGETS.append(fn)
    return fn


def collect(measured: Measured) -> list[Row]:
    return [row for fn in TARGETS for row in fn(measured)]


def _median_seconds(case: Any, key: str) -> float | None:
    runs = case.runs.get(key)
    return statistics.median(run["seconds"] for run in runs) if runs else None


def _not_measured(label: str, why: str) -> list[Row]:
    return [(label, f"not measured: {why}", None)]


# --------------------------------------------------------------------------- issue 16, in order
@target
def whole_train_command(m: Measured) -> list[Row]:
    label = "Whole `train` command, 100,000 x 100 CSV: <= 0.35x the scikit-learn script"
    return _not_measured(label, "no row for it yet (perf-io)")


@target
def csv_reading(m: Measured) -> list[Row]:
    label = "CSV reading, 1,000,000 x 100: >= 2x faster than at the start of issue 16"
    return _not_measured(label, "no row for it yet (perf-io)")


@target
def table_cache(m: Measured) -> list[Row]:
    label = "Table cache: the second run's load phase <= 10% of the first's"
    return _not_measured(label, "no row for it yet (perf-io)")


@target
def train_memory(m: Measured) -> list[Row]:
    label = "`train` on 1,000,000 x 100: peak memory <= 2x the float32 features"
    return _not_measured(label, "no row for it yet (perf-io)")


@target
def batch32_floor(m: Measured) -> list[Row]:
    """Batch 32 on the main case's data: the engine's share of the matrix-products floor."""
    label = "Small batches: batch 32 reaches >= 55% of the matrix-products floor"
    case = m.cases.get("batch32")
    if case is None:
        return _not_measured(label, "the batch32 engine case did not run")
    engine, floor = _median_seconds(case, "mlpcli"), _median_seconds(case, "gemm")
    if engine is None or floor is None:
        return _not_measured(label, "the mlpcli or gemm worker did not run")
    share = floor / engine
    return [(label, f"{share:.0%} ({engine:.3f} s against {floor:.3f} s)", share >= 0.55)]


@target
def recipe_vs_realmlp(m: Measured) -> list[Row]:
    """The default recipe's wall time per model against pytabkit's RealMLP-TD (`recipe.py`)."""
    label = "The recipe: <= 0.2x pytabkit RealMLP-TD's wall time per model"
    recipe = m.figures.get("recipe")
    if recipe is None or recipe.get("ratio") is None:
        why = "recipe comparison skipped" if recipe is None else recipe.get("why", "?")
        return _not_measured(label, why)
    ratio = recipe["ratio"]
    return [(label, f"{ratio:.2f}x ({recipe['detail']})", ratio <= 0.2)]


@target
def ensemble_cost(m: Measured) -> list[Row]:
    """An ensemble of K members against one member, same recipe and table (`recipe.py`)."""
    recipe = m.figures.get("recipe")
    rows: list[Row] = []
    for what, (k, ratio) in (recipe or {}).get("ensemble", {}).items():
        label = f"Ensemble, {what}: <= {0.5 * k:g}x one member's time (0.5 K)"
        rows.append((label, f"{ratio:.2f}x (worst table)", ratio <= 0.5 * k))
    return rows or _not_measured(
        "Ensemble of K members: <= 0.5 K x one member's time", "recipe comparison skipped"
    )


@target
def startup(m: Measured) -> list[Row]:
    label = "Start-up: `mlpcli --help`, `train --help`, `inspect MODEL` <= 0.15 s"
    return _not_measured(label, "no row for it yet (redesign)")


@target
def predict_rate(m: Measured) -> list[Row]:
    label = "`predict`, main-case model, CSV to CSV: >= 300,000 rows/s, flat memory"
    return _not_measured(label, "no row for it yet (perf-io)")
