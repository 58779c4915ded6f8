"""The targets table of `bench/RESULTS.md`: one function per target of issue 16.

Each function takes the `Measured` of the run and returns its `Row`s: verdict True (met),
False (not met: the measured column says the gap, and the row carries the profile that
explains it) or None (not measured in this run, the measured column says why). A function
whose figures were not taken in this run (an engine-only run, a comparator not installed)
returns a row that says so, never nothing, so every target of the issue shows in every report.
`unexplained` lists the rows not met that carry no profile; run.py writes them out as such.

Adding a target: write its function here, decorated with `@target`, in the issue's order, and
put the figures it needs into `Measured.figures` from the section that measures them (engine
cases land in `Measured.cases` by themselves). One function per target keeps the engineers who
own different targets out of each other's lines.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the targets table, and for a target not met the profile of its gap."""

    label: str
    measured: str
    ok: bool | None
    #: Markdown lines (a sentence, then a table) saying where the time or memory goes.
    profile: tuple[str, ...] = ()


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


def unexplained(rows: Iterable[Row]) -> list[Row]:
    """The rows not met without a profile: a harness defect, shown as such in the report."""
    return [row for row in rows if row.ok is False and not row.profile]


def _median_seconds(case: Any, key: str) -> float | None:
    runs = case.runs.get(key)
    return statistics.median(run["seconds"] for run in runs) if runs else None


def _not_measured(label: str, why: str) -> list[Row]:
    return [Row(label, f"not measured: {why}", None)]


def _verdict(label: str, measured: str, ok: bool, profile: list[str]) -> Row:
    """A measured row; its profile is kept only when the target is not met."""
    return Row(label, measured, ok, () if ok else tuple(profile))


# --------------------------------------------------------------------------- profiles
def cprofile_lines(found: dict[str, Any] | None, what: str) -> list[str]:
    """A cProfile (profiles.py) as a sentence and a table of its costliest functions."""
    if not found:
        return [f"No profile of {what}: it was not run."]
    if "failed" in found:
        return [f"The profile of {what} failed ({found['failed']})."]
    imports = found.get("imports") or 0.0
    return [
        f"{what} under cProfile ({found['total']:.2f} s in all, of which "
        f"{imports:.2f} s importing modules; own time of the costliest functions; threads "
        "other than the main one show as the main thread waiting on a lock):",
        "",
        "| function | seconds | share |",
        "| --- | ---: | ---: |",
        *[f"| `{name}` | {own:.3f} | {share:.0%} |" for own, share, name in found["rows"]],
    ]


def _table(title: str, header: tuple[str, ...], rows: Iterable[Iterable[Any]]) -> list[str]:
    return [
        title,
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows],
    ]


def _profiles(m: Measured) -> dict[str, Any]:
    return dict(m.figures.get("profiles", {}))


# --------------------------------------------------------------------------- issue 16, in order
#: bench/phases.py's stages of `train`, as the profiles name them.
STAGES = {
    "imports": "start-up and imports",
    "read": "read the CSV (data.read_table)",
    "load_table": "choose columns, drop missing targets, detect the task",
    "prepare_data": "split train/validation",
    "encode_split": "preprocess: fit on training rows, transform both; encode targets",
    "make_trainer": "build network and optimizer",
    "fit_model": "train",
    "_outcome": "the network's outputs on training and validation rows",
    "compare": "baselines: fit the linear model, score it and the constant",
    "evaluation_report": "evaluate on training and validation rows",
    "model_contents": "collect the model file contents",
    "write_outputs": "write the model file",
}


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# --------------------------------------------------------------------------- issue 16, in order
def _others(found: dict[str, Any]) -> str:
    share = found.get("others_max")
    return "" if share is None else f"; others' CPU share at most {share:.0%} a run"


@target
def whole_train_command(m: Measured) -> list[Row]:
    """`mlpcli train` (no cache) against the scikit-learn script, interleaved (iobench.py)."""
    label = "Whole `train` command, 100,000 x 100 CSV: <= 0.35x the scikit-learn script"
    found = m.figures.get("io", {}).get("whole_train")
    if not found:
        return _not_measured(label, "needs the 100,000-row CSV and scikit-learn (iobench.py)")
    met = found["ratio"] <= 0.35
    allowed = 0.35 * found["sklearn_wall"]
    detail = (
        f"{found['ratio']:.2f}x ({found['mlpcli_wall']:.1f} s against "
        f"{found['sklearn_wall']:.1f} s; CPU {found['cpu_ratio']:.2f}x; "
        f"load {m.figures['io']['load_before']}{_others(found)})"
    )
    if not met:
        detail += f"; gap {found['mlpcli_wall'] - allowed:.1f} s over the {allowed:.1f} s allowed"
    stages = dict(found.get("train_stages") or {})
    total = stages.pop("total", None)
    if total:
        rest = total - sum(stages.values())
        rows = [(STAGES.get(k, k), f"{v:.2f}", f"{v / total:.0%}") for k, v in stages.items()]
        profile = _table(
            f"Where mlpcli's {total:.1f} s go (`bench/phases.py`, the same command in one "
            "process, each stage timed exclusive of the stages inside it):",
            ("stage", "seconds", "share"),
            [*rows, ("the rest (outside the stages)", f"{rest:.2f}", f"{rest / total:.0%}")],
        )
    else:
        profile = ["No stage profile: bench/phases.py did not run on this CSV."]
    return [_verdict(label, detail, met, profile)]


@target
def csv_reading(m: Measured) -> list[Row]:
    """`read_table` as it reads by default (from 256 MB: pyarrow's reader when installed, else
    the block reader) and with pyarrow forced, against one pandas call, fresh processes
    (iobench.py)."""
    label = "CSV reading, 1,000,000 x 100: >= 2x faster than at the start of issue 16"
    found = m.figures.get("io", {}).get("read")
    if not found:
        return _not_measured(label, "the whole-command section did not run (iobench.py)")
    speedup = found["whole_wall"] / found["blocks_wall"]
    arrow = ""
    readers = [
        ("one pandas call (the start of issue 16)", "whole"),
        ("`read_table` as it reads by default", "blocks"),
    ]
    if "arrow_wall" in found:
        readers.append(("pyarrow's reader forced (`MLPCLI_ARROW_READ=1`)", "arrow"))
        ratio = found["whole_wall"] / found["arrow_wall"]
        arrow = (
            f"; pyarrow's reader forced (MLPCLI_ARROW_READ=1) {ratio:.2f}x "
            f"({found['arrow_wall']:.1f} s, "
            f"CPU {found['arrow_cpu']:.1f} s, peak {_gib(found['arrow_peak'])})"
        )
        if not found.get("same", True):
            arrow += "; VALUES DIFFER"
    detail = (
        f"{speedup:.2f}x by default on {found['file']} ({found['blocks_wall']:.1f} s against "
        f"{found['whole_wall']:.1f} s; CPU {found['blocks_cpu']:.1f} s against "
        f"{found['whole_cpu']:.1f} s; peak {found['blocks_peak'] / 2**30:.2f} against "
        f"{found['whole_peak'] / 2**30:.2f} GiB{arrow}; load {m.figures['io']['load_before']})"
    )
    if "1M" not in found["file"]:
        return [Row(label, detail + "; not the issue's 1,000,000-row file", None)]
    profile = _table(
        "The readers side by side (fresh processes, medians): on 2 cores a reader is at most "
        "2x its CPU time faster than one core, and the start's pandas call used one core:",
        ("reader", "wall s", "CPU s", "CPU / wall", "peak"),
        [
            (name, f"{found[f'{k}_wall']:.1f}", f"{found[f'{k}_cpu']:.1f}",
             f"{found[f'{k}_cpu'] / found[f'{k}_wall']:.2f}", _gib(found[f"{k}_peak"]))
            for name, k in readers
        ],
    )  # fmt: skip
    profile += ["", *cprofile_lines(_profiles(m).get("read"), f"`read_table` on {found['file']}")]
    return [_verdict(label, detail, speedup >= 2, profile)]


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
    what = f"`read_table` on {found['file']} from its cache entry (the second run)"
    profile = cprofile_lines(_profiles(m).get("cache_hit"), what)
    return [_verdict(label, detail, share <= 0.10 and found["same"], profile)]


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
        detail += f"gap: {(peak - limit) / 2**20:.0f} MiB over the {limit / 2**30:.3f} GiB allowed"
    report = m.figures.get("phases")
    if report and report.get("n_rows") == 1_000_000:
        rows = [
            (STAGES.get(name, name), _gib(stage["peak_rss"]))
            for name, stage in report["stages"].items()
        ]
        profile = _table(
            "Resident memory by stage of the same `train` (`bench/phases.py`, sampled every "
            f"10 ms; peak {_gib(report['peak_rss'])}; when training starts "
            f"{_gib(report.get('prepared_rss') or 0)} resident, of which the prepared arrays "
            f"{_gib(report.get('prepared_live') or 0)}):",
            ("stage", "peak resident memory during it"),
            rows,
        )
    else:
        profile = ["No memory profile: bench/phases.py did not run on the 1,000,000-row CSV."]
    return [_verdict(label, detail, peak <= limit, profile)]


#: bench/stepcost.py's parts of a batch-32 step, as its section names them.
STEP_PARTS = {
    "gemm": "the matrix products (the floor, timed alone)",
    "layers": "forward + backward outside them: bias, relu, layer code",
    "loss": "the cross-entropy loss and its gradient (32 x 3)",
    "adam": "Adam's update (12 passes over 58,755 float32 weights)",
    "norms": "per-layer gradient norms (the history's `grad_norms`)",
    "gather": "gathering the shuffled batch (`np.take` into buffers)",
    "rest": "the loop, and the noise of the parts timed alone",
}


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
    steps = case.case.n_samples / (case.case.batch_size or case.case.n_samples)
    if share < 0.55:
        gap = (engine - floor / 0.55) / steps * 1e6
        detail += f"; gap: {gap:.0f} us per step over the {floor / 0.55 / steps * 1e6:.0f} allowed"
    found = m.figures.get("stepcost")
    if found:
        detail += (
            f"; Adam alone {found['adam_us']:.0f} us, the bare NumPy loop "
            f"{found['bare_share']:.0%} of the floor"
        )
        parts = found.get("parts", {})
        profile = _table(
            f"One step, part by part (`bench/stepcost.py`, one process: {found['step_us']:.0f} "
            f"us a step, {found['budget_us']:.0f} us allowed; the same arithmetic as one bare "
            f"NumPy loop {found['bare_share']:.0%} of the floor; one NumPy call on 8 numbers "
            f"{found.get('call_us', float('nan')):.1f} us):",
            ("part", "us per step", "share of the step"),
            [(STEP_PARTS[k], f"{v:.0f}", f"{v / found['step_us']:.0%}") for k, v in parts.items()],
        )
    else:
        profile = ["No step profile: bench/stepcost.py did not run."]
    return [_verdict(label, detail, share >= 0.55, profile)]


@target
def recipe_vs_realmlp(m: Measured) -> list[Row]:
    """The default recipe's wall time per model against pytabkit's RealMLP-TD (`recipe.py`)."""
    label = "The recipe: <= 0.2x pytabkit RealMLP-TD's wall time per model"
    recipe = m.figures.get("recipe")
    if recipe is None or recipe.get("ratio") is None:
        why = "recipe comparison skipped" if recipe is None else recipe.get("why", "?")
        return _not_measured(label, why)
    ratio = recipe["ratio"]
    detail = f"{ratio:.2f}x ({recipe['detail']})"
    left_out = [key for key in recipe.get("skipped", {}) if key.startswith("table ")]
    if left_out:
        detail += f"; not run (time budget): {', '.join(k[len('table ') :] for k in left_out)}"
    one = _profiles(m).get("recipe_one")
    what = f"one fit of mlpcli's recipe ({(one or {}).get('what', '?')})"
    return [_verdict(label, detail, ratio <= 0.2, cprofile_lines(one, what))]


def _joined(one: dict[str, Any], many: dict[str, Any], k: int) -> list[str]:
    """Two cProfiles side by side: the K-member fit's costliest functions against one member."""
    own = {name: seconds for seconds, _, name in one["rows"]}
    return _table(
        f"Costliest functions of the K = {k} fit (own seconds under cProfile; "
        f"{many['total']:.2f} s in all) beside the same functions in one member's fit "
        f"({one['total']:.2f} s; `-` where a function is not among its top {len(own)}):",
        ("function", f"K = {k}", "one member", "ratio"),
        [
            (f"`{name}`", f"{seconds:.3f}", f"{own[name]:.3f}" if name in own else "-",
             f"{seconds / own[name]:.1f}x" if own.get(name) else "-")
            for seconds, _, name in many["rows"]
        ],
    )  # fmt: skip


@target
def ensemble_cost(m: Measured) -> list[Row]:
    """An ensemble of K members (`--ensemble K`'s width) against one default model, same recipe
    and table (`recipe.py`)."""
    recipe = m.figures.get("recipe")
    profiles = _profiles(m)
    one, many = profiles.get("recipe_one"), profiles.get("recipe_k")
    if one and many and "failed" not in one and "failed" not in many:
        profile = _joined(one, many, many.get("k", 0))
    else:
        profile = cprofile_lines(many or one, "the ensemble's fit")
    rows: list[Row] = []
    for what, (k, ratio) in (recipe or {}).get("ensemble", {}).items():
        label = f"Ensemble, {what}: <= {0.5 * k:g}x one model's time (0.5 K)"
        text = f"{ratio:.2f}x (worst table)"
        rows.append(_verdict(label, text, ratio <= 0.5 * k, profile))
        if k == 5:  # issue 14: `--ensemble 5` costs less than 3x a single model
            label = f"Ensemble, {what}: < 3x one model's time (issue 14)"
            rows.append(_verdict(label, text, ratio < 3, profile))
    return rows or _not_measured(
        "Ensemble of K members: <= 0.5 K x one model's time", "recipe comparison skipped"
    )


@target
def startup(m: Measured) -> list[Row]:
    """Fresh processes (`startup.py`): wall-time medians against 0.15 s, with the floors
    (`python -c pass`, `import click`, `import typer`), the CPU time and the load average
    beside them, and each command's first run where startup.py times one ("NAME, help not
    kept", "NAME, text not kept")."""
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
    imports = m.figures.get("startup_imports", {})
    rows: list[Row] = []
    for name in ("mlpcli --help", "mlpcli train --help", "mlpcli inspect MODEL"):
        wall = median[name]
        verdict = "met" if wall <= 0.15 else f"gap {wall - 0.15:+.3f} s"
        measured = f"{wall:.3f} s wall ({verdict}), {cpu[name]:.3f} s CPU"
        for first in (key for key in median if key.startswith(f"{name}, ")):  # nothing kept
            measured += f"; first run ({first[len(name) + 2 :]}): {median[first]:.3f} s wall"
        measured += f" (floors: {floors}; load {found['load'][0]})"
        seen = imports.get(name)
        if seen:
            profile = [
                f"`{name}` in one process, `python -X importtime` (which inflates every "
                f"import): the heavy modules it loads: {seen['heavy']}; its costliest "
                "top-level imports:",
                "",
                "| module | seconds, with what it imports |",
                "| --- | ---: |",
                *[f"| `{module}` | {seconds:.3f} |" for seconds, module in seen["top"]],
                "",
                f"Its CPU time is {cpu[name]:.3f} s against `python -c pass` "
                f"{cpu.get('python -c pass', float('nan')):.3f} s in the same rounds; a wall "
                "time far above the CPU time is waiting for a core (the load).",
            ]
        else:
            profile = ["No import profile of this command was taken."]
        rows.append(_verdict(f"Start-up: `{name}` <= 0.15 s", measured, wall <= 0.15, profile))
    return rows


def _predict_row(m: Measured, key: str, which: str) -> Row:
    label = f"`predict`, main-case model, CSV to CSV, {which}: >= 300,000 rows/s, flat memory"
    found = m.figures.get(key)
    if not found or found["rows"] < 1_000_000:
        return Row(label, "not measured: the 1,000,000-row CSV was not predicted", None)
    flat = found["peak_below"] is not None and found["peak"] <= 1.5 * found["peak_below"]
    below = (
        f", {_gib(found['peak_below'])} at {found['rows_below']:,}" if found["peak_below"] else ""
    )
    detail = f"{found['rate']:,.0f} rows/s; {_gib(found['peak'])} at {found['rows']:,}{below}"
    met = found["rate"] >= 300_000 and flat
    if not met:
        detail += f"; {'' if flat else 'memory not flat; '}"
        detail += f"{1e6 / found['rate']:.2f} us a row against the 3.33 allowed"
    profile: list[str] = []
    per_row = m.figures.get("io", {}).get("whole_train", {}).get("predict_us_per_row")
    if per_row:
        parts = [(k, f"{v:.2f}") for k, v in per_row.items() if k != "rows"]
        profile += _table(
            f"CPU per row of `predict`'s steps (µs; one process, the first run's path, "
            f"{per_row['rows']:,} rows, bench/iobench.py): the parse runs on a reading thread, "
            "preprocessing, the forward pass and the CSV text on one worker per core, so on 2 "
            "cores 300,000 rows/s needs all the steps under 6.7 µs of CPU a row together, and "
            "the parse under 3.3:",
            ("step", "µs per row"),
            parts,
        )
        profile.append("")
    profile += cprofile_lines(_profiles(m).get(key), f"`mlpcli predict` on the CSV ({which})")
    return _verdict(label, detail, met, profile)


@target
def predict_rate(m: Measured) -> list[Row]:
    """`mlpcli predict` on the 1M-row CSV, the first run (parses) and from the table cache
    an earlier command filled; flat: peak <= 1.5x the next size down's."""
    return [
        _predict_row(m, "predict", "first run (parses the CSV, `--no-cache`)"),
        _predict_row(m, "predict_cached", "cached run (the table cache filled by an earlier run)"),
    ]


# --------------------------------------------------------------------------- issue 17
#: The last `bench/outofcore.py run` (it takes half an hour, so run.py does not repeat it).
OUTOFCORE_RESULTS = "outofcore-results.json"
#: Another file than bench/OUTOFCORE_RESULTS (tests).
OUTOFCORE_PATH: Any = None


def _outofcore(m: Measured) -> dict[str, Any] | None:
    import json
    from pathlib import Path

    found = m.figures.get("outofcore")
    path = OUTOFCORE_PATH or Path(__file__).with_name(OUTOFCORE_RESULTS)
    if found is None and path.is_file():
        found = json.loads(path.read_text())
    return found


def _auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil's standard error of a ROC AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)
    return float((var / (n_pos * n_neg)) ** 0.5)


def _source(r: dict[str, Any]) -> str:
    """Where an out-of-core figure comes from: the long run's file, not this run."""
    code = r.get("provenance", {}).get("code", "at an unrecorded commit").split(" (")[0]
    return f"bench/{OUTOFCORE_RESULTS}: the long run {code}, not this run"


#: The long run's steps, as its file names them.
OUTOFCORE_STEPS = {
    "convert": "CSV -> table cache, in chunks, under the limit",
    "second": "`train --out-of-core on` from the cache, under the limit",
    "sample_ooc": "out of core on a 1M-row sample, no limit",
    "sample_memory": "in memory on the sample, no limit, alongside the limited run",
    "sample_memory_after": "in memory on the sample, alone afterwards",
}


def outofcore_profile(r: dict[str, Any]) -> list[str]:
    """The long run's steps: wall time, throughput and memory of each."""
    rows = []
    for key, what in OUTOFCORE_STEPS.items():
        run = r.get(key)
        if run:
            anon = run.get("cgroup_peak_anon_bytes")
            rows.append((
                what, f"{run.get('wall_seconds', run.get('seconds', 0)):.1f}",
                f"{run['rows_per_second']:,}" if "rows_per_second" in run else "-",
                f"{run['peak_rss_bytes'] / 2**20:.0f} MiB",
                "-" if anon is None else f"{anon / 2**20:.0f} MiB",
                run.get("cgroup_oom_kills", "-"),
            ))  # fmt: skip
    origin = r.get("provenance", {})
    return _table(
        f"The long run's steps (bench/{OUTOFCORE_RESULTS}, not this run: "
        f"`{origin.get('command', 'bench/outofcore.py run')}` "
        f"{origin.get('code', 'at an unrecorded commit')}; `uptime` before: "
        f"`{r.get('uptime_before', '?')}`):",
        ("step", "wall s", "rows/s of epochs", "peak RSS", "cgroup anon peak", "OOM kills"),
        rows,
    )


@target
def outofcore_memory(m: Measured) -> list[Row]:
    label = "Out of core: 2 epochs on a CSV whose float32 matrix is >= 4x the memory limit"
    r = _outofcore(m)
    if r is None:
        return _not_measured(label, f"no bench/{OUTOFCORE_RESULTS} (bench/outofcore.py run)")
    rows: list[Row] = []
    train = r["second"]
    limit = train.get("cgroup_limit_bytes")
    matrix = 4 * (train["n_train"] + train["n_valid"]) * r["table_columns"]
    for key, what in (("convert", "CSV to the table cache"), ("second", "train from the cache")):
        run = r[key]
        if limit is None:
            rows.append(Row(f"{label}, {what}", "no cgroup: peak RSS only", None))
            continue
        ok = run["cgroup_oom_kills"] == 0 and run["cgroup_failcnt"] == 0
        ok = ok and run["peak_rss_bytes"] < limit and matrix >= 4 * limit
        rows.append(_verdict(
            f"{label}, {what}",
            f"matrix {matrix / 2**30:.2f} GiB = {matrix / limit:.2f}x the {limit >> 20} MiB "
            f"cgroup; peak RSS {run['peak_rss_bytes'] / 2**20:.0f} MiB, anonymous peak "
            f"{run.get('cgroup_peak_anon_bytes', 0) / 2**20:.0f} MiB, failed allocations "
            f"{run['cgroup_failcnt']}, OOM kills {run['cgroup_oom_kills']} ({_source(r)})",
            ok, outofcore_profile(r),
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
    after = r.get("sample_memory_after", {}).get("rows_per_second")
    same = r["sample_ooc"]["rows_per_second"]
    detail = (f"{share:.0%}: {ooc:,} rows/s out of core (from the cache, under the limit) "
              f"against {memory:,} in memory on a 1M-row sample run at the same time"
              + (f" ({ooc / after:.0%} of {after:,} in memory alone afterwards)" if after else "")
              + f"; the same sample out of core {same:,} ({_source(r)})")  # fmt: skip
    ok = share >= 0.5 and (after is None or ooc / after >= 0.5)
    return [_verdict(label, detail, ok, outofcore_profile(r))]


@target
def outofcore_metric(m: Measured) -> list[Row]:
    """Within noise: the big table's model no worse than the in-memory sample's by 2 SE, and
    the same sample out of core within 2 SE of the difference of it in memory."""
    label = "Out of core: validation ROC AUC within noise (2 SE) of an in-memory run on a sample"
    r = _outofcore(m)
    if r is None:
        return _not_measured(label, f"no bench/{OUTOFCORE_RESULTS}")
    sample, big = r["sample_memory"], r["second"]
    auc = sample["validation"]["roc_auc"]
    se = _auc_se(auc, sample["n_valid"] // 2, sample["n_valid"] // 2)
    diff = big["validation"]["roc_auc"] - auc
    same = r["sample_ooc"]["validation"]["roc_auc"] - auc
    detail = (f"{big['validation']['roc_auc']:.4f} out of core (big table) vs "
              f"{auc:.4f} in memory (sample): {diff:+.4f} (the model of 11x the rows may be "
              f"better, not worse by more than 2 SE); the same sample out of core {same:+.4f}; "
              f"SE {se:.4f} each, {se * 2**0.5:.4f} of a difference ({_source(r)})")  # fmt: skip
    ok = diff >= -2 * se and abs(same) <= 2 * se * 2**0.5
    return [_verdict(label, detail, ok, outofcore_profile(r))]


def outofcore_section(m: Measured) -> list[str]:
    """RESULTS.md's out-of-core section: the long run's steps, from its file."""
    r = _outofcore(m)
    if r is None:
        return []
    origin = r.get("provenance", {})
    lines = [
        "## Out of core (issue 17): the long run",
        "",
        f"`run.py` does not repeat it (10 to 30 minutes and a 3.9 GB CSV); it reads "
        f"bench/{OUTOFCORE_RESULTS}. {origin.get('note', '')} bench/OUTOFCORE.md has the "
        "earlier runs and the round under 512 MiB of cv, explain and the preparation.",
        "",
        *outofcore_profile(r),
        "",
        f"`uptime` after: `{r.get('uptime_after', '?')}`.",
        "",
    ]
    return lines
