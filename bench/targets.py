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
    """`mlpcli train` (no cache) against the scikit-learn script, interleaved (iobench.py)."""
    label = "Whole `train` command, 100,000 x 100 CSV: <= 0.35x the scikit-learn script"
    found = m.figures.get("io", {}).get("whole_train")
    if not found:
        return _not_measured(label, "needs the 100,000-row CSV and scikit-learn (iobench.py)")
    detail = (
        f"{found['ratio']:.2f}x ({found['mlpcli_wall']:.1f} s against "
        f"{found['sklearn_wall']:.1f} s; CPU {found['cpu_ratio']:.2f}x; "
        f"load {m.figures['io']['load_before']})"
    )
    met = found["ratio"] <= 0.35
    stages = found.get("train_stages")
    if stages and not met:
        big = {k: v for k, v in stages.items() if k != "total" and v >= 0.05 * stages["total"]}
        shown = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(big.items(), key=lambda kv: -kv[1]))
        detail += f". Where mlpcli's {stages['total']:.1f} s go (bench/phases.py): {shown}"
    return [(label, detail, met)]


@target
def csv_reading(m: Measured) -> list[Row]:
    """`read_table` as it reads by default (blocks from 256 MB) and through pyarrow, against one
    pandas call, fresh processes (iobench.py)."""
    label = "CSV reading, 1,000,000 x 100: >= 2x faster than at the start of issue 16"
    found = m.figures.get("io", {}).get("read")
    if not found:
        return _not_measured(label, "the whole-command section did not run (iobench.py)")
    speedup = found["whole_wall"] / found["blocks_wall"]
    arrow = ""
    if "arrow_wall" in found:
        ratio = found["whole_wall"] / found["arrow_wall"]
        arrow = (
            f"; pyarrow's reader (MLPCLI_ARROW_READ=1) {ratio:.2f}x ({found['arrow_wall']:.1f} s, "
            f"CPU {found['arrow_cpu']:.1f} s, peak {found['arrow_peak'] / 2**30:.2f} GiB)"
        )
        if not found.get("same", True):
            arrow += "; VALUES DIFFER"
    detail = (
        f"{speedup:.2f}x on {found['file']} ({found['blocks_wall']:.1f} s against "
        f"{found['whole_wall']:.1f} s; CPU {found['blocks_cpu']:.1f} s against "
        f"{found['whole_cpu']:.1f} s; peak {found['blocks_peak'] / 2**30:.2f} against "
        f"{found['whole_peak'] / 2**30:.2f} GiB{arrow}; load {m.figures['io']['load_before']})"
    )
    met = speedup >= 2
    if not met:
        detail += (
            ". Reading is the parser's CPU: pandas' C parser holds the GIL, so blocks on two "
            "threads do not overlap, and pyarrow's threads do but spend the CPU shown"
        )
    return [(label, detail, met if "1M" in found["file"] else None)]


@target
def table_cache(m: Measured) -> list[Row]:
    """`read_table` with an empty cache, then again from it, fresh processes (iobench.py)."""
    label = "Table cache: the second run's load phase <= 10% of the first's"
    found = m.figures.get("io", {}).get("cache")
    if not found:
        return _not_measured(label, "the whole-command section did not run (iobench.py)")
    share = found["second_wall"] / found["first_wall"]
    detail = (
        f"{share:.1%} on {found['file']} ({found['second_wall']:.2f} s against "
        f"{found['first_wall']:.1f} s; CPU {found['second_cpu']:.2f} s against "
        f"{found['first_cpu']:.1f} s){'' if found['same'] else '; VALUES DIFFER'}"
    )
    return [(label, detail, share <= 0.10 and found["same"])]


@target
def train_memory(m: Measured) -> list[Row]:
    """Peak RSS of `mlpcli train` (`/usr/bin/time -v`) over the float32 feature matrix."""
    label = "`train` on 1,000,000 x 100: peak memory <= 2x the float32 features"
    peaks = m.figures.get("train_peak", {})
    if 1_000_000 not in peaks:
        return _not_measured(label, "the 1,000,000-row CSV was not run")
    peak, features = peaks[1_000_000]
    limit = 2 * features
    detail = f"{peak / 2**30:.3f} GiB = {peak / features:.2f}x {features / 2**30:.3f} GiB; "
    if peak <= limit:
        detail += f"{(limit - peak) / 2**20:.0f} MiB under the {limit / 2**30:.3f} GiB allowed"
    else:
        detail += (
            f"gap: {(peak - limit) / 2**20:.0f} MiB over the {limit / 2**30:.3f} GiB allowed "
            "(the peak holds X, written over the table's floats, the interpreter and "
            "libraries, and one block's transient while encoding or scoring; README)"
        )
    return [(label, detail, peak <= limit)]


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
    detail = f"{share:.0%} ({engine:.3f} s against {floor:.3f} s)"
    if share < 0.55:
        steps = case.case.n_samples / (case.case.batch_size or case.case.n_samples)
        gap = (engine - floor / 0.55) / steps * 1e6
        detail += f"; gap: {gap:.0f} us per step over the {floor / 0.55 / steps * 1e6:.0f} allowed"
        profile = m.figures.get("stepcost")
        if profile:
            detail += (
                f"; Adam alone {profile['adam_us']:.0f} us, the bare NumPy loop "
                f"{profile['bare_share']:.0%} of the floor (profile: 'Batch 32: where one step "
                "goes')"
            )
    return [(label, detail, share >= 0.55)]


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
        if k == 5:  # issue 14: `--ensemble 5` costs less than 3x a single model
            label = f"Ensemble, {what}: < 3x one member's time (issue 14)"
            rows.append((label, f"{ratio:.2f}x (worst table)", ratio < 3))
    return rows or _not_measured(
        "Ensemble of K members: <= 0.5 K x one member's time", "recipe comparison skipped"
    )


@target
def startup(m: Measured) -> list[Row]:
    """Fresh processes (`startup.py`): wall-time medians against 0.15 s, with the floors
    (`python -c pass`, `import click`, `import typer`), the CPU time and the load average
    beside them; `train --help` also gives its first run, before its help is kept."""
    found = m.figures.get("startup")
    if found is None:
        label = "Start-up: `mlpcli --help`, `train --help`, `inspect MODEL` <= 0.15 s"
        return _not_measured(label, "start-up skipped (--no-startup)")
    median, cpu = found["median"], found["cpu"]
    floors = ", ".join(
        f"`{name}` {median[name]:.3f} s"
        for name in ("python -c pass", "import click", "import typer", "import numpy")
        if name in median
    )
    rows: list[Row] = []
    for name in ("mlpcli --help", "mlpcli train --help", "mlpcli inspect MODEL"):
        wall = median[name]
        verdict = "met" if wall <= 0.15 else f"gap {wall - 0.15:+.3f} s"
        measured = f"{wall:.3f} s wall ({verdict}), {cpu[name]:.3f} s CPU"
        first = f"{name}, help not kept"
        if first in median:
            measured += f"; first run, before its help is kept: {median[first]:.3f} s wall"
        measured += f" (floors: {floors}; load {found['load'][0]})"
        rows.append((f"Start-up: `{name}` <= 0.15 s", measured, wall <= 0.15))
    return rows


@target
def predict_rate(m: Measured) -> list[Row]:
    """`mlpcli predict` on the largest CSV; flat: peak <= 1.5x the next size down's."""
    label = "`predict`, main-case model, CSV to CSV: >= 300,000 rows/s, flat memory"
    found = m.figures.get("predict")
    if not found or found["rows"] < 1_000_000:
        return _not_measured(label, "the 1,000,000-row CSV was not predicted")
    flat = found["peak_below"] is not None and found["peak"] <= 1.5 * found["peak_below"]
    below = (
        f", {found['peak_below'] / 2**30:.2f} GiB at {found['rows_below']:,}"
        if found["peak_below"]
        else ""
    )
    detail = (
        f"{found['rate']:,.0f} rows/s; {found['peak'] / 2**30:.2f} GiB at {found['rows']:,}{below}"
    )
    met = found["rate"] >= 300_000 and flat
    per_row = m.figures.get("io", {}).get("whole_train", {}).get("predict_us_per_row")
    if per_row and not met:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in per_row.items() if k != "rows")
        detail += (
            f". CPU per row (µs, one process, {per_row['rows']:,} rows): {parts}. The parse runs "
            "on a reading thread beside the rest; 300,000 rows/s needs each of the two sides "
            "under 3.3 µs a row"
        )
    return [(label, detail, met)]


# --------------------------------------------------------------------------- issue 17
#: The last `bench/outofcore.py run` (it takes half an hour, so run.py does not repeat it).
OUTOFCORE_RESULTS = "outofcore-results.json"


def _outofcore(m: Measured) -> dict[str, Any] | None:
    import json
    from pathlib import Path

    found = m.figures.get("outofcore")
    path = Path(__file__).with_name(OUTOFCORE_RESULTS)
    if found is None and path.is_file():
        found = json.loads(path.read_text())
    return found


def _auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil's standard error of a ROC AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)
    return float((var / (n_pos * n_neg)) ** 0.5)


@target
def outofcore_memory(m: Measured) -> list[Row]:
    label = "Out of core: 2 epochs on a CSV whose float32 matrix is >= 4x the memory limit"
    r = _outofcore(m)
    if r is None:
        return _not_measured(label, f"no bench/{OUTOFCORE_RESULTS} (bench/outofcore.py run)")
    rows: list[Row] = []
    limit = r["first"].get("cgroup_limit_bytes")
    matrix = 4 * (r["first"]["n_train"] + r["first"]["n_valid"]) * r["table_columns"]
    for key, what in (("first", "first run (converts)"), ("second", "second run (cached)")):
        run = r[key]
        if limit is None:
            rows.append((f"{label}, {what}", "no cgroup: peak RSS only", None))
            continue
        ok = run["cgroup_oom_kills"] == 0 and run["peak_rss_bytes"] < limit
        rows.append((
            f"{label}, {what}",
            f"matrix {matrix / 2**30:.2f} GiB = {matrix / limit:.2f}x the {limit >> 20} MiB "
            f"cgroup; peak RSS {run['peak_rss_bytes'] / 2**20:.0f} MiB, cgroup peak (with page "
            f"cache) {run['cgroup_max_usage_bytes'] / 2**20:.0f} MiB, OOM kills "
            f"{run['cgroup_oom_kills']}; {run['wall_seconds']:.0f} s wall",
            ok and matrix >= 4 * limit,
        ))  # fmt: skip
    return rows


@target
def outofcore_throughput(m: Measured) -> list[Row]:
    label = "Out of core: training throughput >= 50% of the in-memory path (rows/s of epochs)"
    r = _outofcore(m)
    if r is None:
        return _not_measured(label, f"no bench/{OUTOFCORE_RESULTS}")
    ooc, memory = r["second"]["rows_per_second"], r["sample_memory"]["rows_per_second"]
    share = ooc / memory
    same = r["sample_ooc"]["rows_per_second"]
    detail = (f"{share:.0%}: {ooc:,} rows/s out of core (cached run) against {memory:,} in "
              f"memory (1M-row sample); the same sample out of core {same:,}")  # fmt: skip
    return [(label, detail, share >= 0.5)]


@target
def outofcore_metric(m: Measured) -> list[Row]:
    label = "Out of core: validation ROC AUC within noise (2 SE) of an in-memory run on a sample"
    r = _outofcore(m)
    if r is None:
        return _not_measured(label, f"no bench/{OUTOFCORE_RESULTS}")
    sample, big = r["sample_memory"], r["second"]
    se = _auc_se(sample["validation"]["roc_auc"], sample["n_valid"] // 2, sample["n_valid"] // 2)
    diff = big["validation"]["roc_auc"] - sample["validation"]["roc_auc"]
    same = r["sample_ooc"]["validation"]["roc_auc"] - sample["validation"]["roc_auc"]
    detail = (f"{big['validation']['roc_auc']:.4f} out of core (big table) vs "
              f"{sample['validation']['roc_auc']:.4f} in memory (sample): {diff:+.4f}, SE "
              f"{se:.4f}; the sample out of core {same:+.4f}")  # fmt: skip
    return [(label, detail, abs(diff) <= 2 * se)]
