"""Run mlpcli's benchmarks and write `bench/RESULTS.md`.

    python bench/run.py --out bench/RESULTS.md          # everything (about half an hour)
    python bench/run.py --quick --out /tmp/quick.md     # fewer repeats, no 1M-row CSV

Every target of issue 16 gets a row (`targets.py`): met, not met with its gap and the profile
that explains it (printed below the table), or not measured and why. The report is written
after each section, so a run stopped early leaves what it measured, marked partial.

Engine cases: one worker process per implementation (mlpcli, a bare NumPy loop, the matrix
products alone, scikit-learn float64/float32, PyTorch), asked in turn for one run each round,
so the runs interleave A B A B and every ratio compares runs made seconds apart. Comparators
that are not installed (`pip install -e '.[bench]'`) are skipped and say why.
Whole commands, start-up and determinism: see `commands.py`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import CASES, Case  # noqa: E402
from idle import cpu_snapshot, others_share, wait_idle  # noqa: E402
from impls import IMPLS  # noqa: E402
from targets import Measured, collect, outofcore_section, unexplained  # noqa: E402

REFERENCE = "mlpcli"


# --------------------------------------------------------------------------- workers
class Worker:
    """One implementation on one case in its own process."""

    def __init__(
        self, key: str, case: Case, threads: int, env: dict[str, str] | None = None
    ) -> None:
        self.key = key
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "impls.py"), key, case.name, str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            return {"skip": f"worker exited with code {code}"}
        return json.loads(line)

    @property
    def skip(self) -> str | None:
        return self.hello.get("skip")

    def run(self, wait: float = 0.0, attempts: int = 3) -> dict[str, Any]:
        """One timed run; repeated (after waiting for idle CPUs) while other processes took
        more than a quarter of the CPUs during it, at most `attempts` runs in all."""
        assert self.proc.stdin is not None
        result: dict[str, Any] = {}
        for attempt in range(1, attempts + 1):
            wait_idle(wait)
            before = cpu_snapshot()
            self.proc.stdin.write("run\n")
            self.proc.stdin.flush()
            result = self._read()
            result["others"] = others_share(before, cpu_snapshot(), result.get("cpu", 0.0))
            result["attempts"] = attempt
            if wait <= 0 or result["others"] <= 0.25:
                break
        return result

    def close(self) -> None:
        if self.proc.stdin is not None and self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


@dataclass
class CaseResult:
    case: Case
    title: str = ""
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    hello: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average before, after


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run_case(
    case: Case,
    impls: list[str],
    threads: int,
    repeats: int,
    log: Any,
    env: dict[str, str] | None = None,
    title: str = "",
    wait: float = 0.0,
) -> CaseResult:
    result = CaseResult(case, title or f"{case.title}: {case.describe()}")
    result.load.append(load_average())
    workers: list[Worker] = []
    try:
        for key in impls:
            log(f"  starting {key} (data, warm-up run)")
            worker = Worker(key, case, threads, env)
            if worker.skip:
                result.skipped[key] = worker.skip
                worker.close()
                continue
            workers.append(worker)
            result.hello[key] = worker.hello
            result.runs[key] = []
            result.order.append(key)
        for r in range(repeats):
            # Alternate the order each round, so no implementation always follows another.
            for worker in workers if r % 2 == 0 else reversed(workers):
                time.sleep(0.2)  # let the previous worker's threads go idle
                result.runs[worker.key].append(worker.run(wait))
            summary = ", ".join(
                f"{w.key} {result.runs[w.key][-1]['seconds']:.3f}"
                + (f" (try {n})" if (n := result.runs[w.key][-1]["attempts"]) > 1 else "")
                for w in workers
            )
            log(f"  round {r + 1}/{repeats}: {summary}")
    finally:
        for worker in workers:
            worker.close()
    result.load.append(load_average())
    return result


# --------------------------------------------------------------------------- statistics
def seconds(result: CaseResult, key: str) -> list[float]:
    return [run["seconds"] for run in result.runs[key]]


def spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def pair_ratios(result: CaseResult, a: str, b: str) -> list[float]:
    """a / b per round: runs of the same round were made seconds apart."""
    return [x / y for x, y in zip(seconds(result, a), seconds(result, b), strict=True)]


def fmt_spread(values: list[float], digits: int = 3) -> str:
    med, lo, hi = spread(values)
    return f"{med:.{digits}f} ({lo:.{digits}f} to {hi:.{digits}f})"


def contention_note(result: CaseResult) -> str:
    runs = [run for runs in result.runs.values() for run in runs]
    if not runs or "others" not in runs[0]:
        return ""
    repeated = sum(run["attempts"] - 1 for run in runs)
    others = statistics.median(run["others"] for run in runs)
    worst = max(run["others"] for run in runs)
    return (
        f"Other processes used a median {others:.0%} (at most {worst:.0%}) of the CPUs during "
        f"the kept runs; {repeated} run(s) were repeated because they used more than 25%."
    )


def case_table(result: CaseResult) -> list[str]:
    c = result.case
    lines = [
        f"### {result.title}",
        "",
        f"1-minute load average before and after: {result.load[0]:.1f}, {result.load[-1]:.1f} "
        f"({os.cpu_count()} CPUs; other processes on the machine share them). "
        + contention_note(result),
        "",
        "| implementation | seconds per run, median (min to max) | seconds per epoch | "
        "mlpcli / this, per round: median (min to max) | final training loss |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in result.order:
        values = seconds(result, key)
        per_epoch = statistics.median(values) / c.epochs
        ratio = "1" if key == REFERENCE else fmt_spread(pair_ratios(result, REFERENCE, key), 2)
        if REFERENCE not in result.runs:
            ratio = "-"
        loss = result.runs[key][-1]["loss"]
        loss_text = "-" if loss is None or loss != loss else f"{loss:.4f}"
        lines.append(
            f"| {IMPLS[key].label} | {fmt_spread(values)} | {per_epoch:.4g} | {ratio} | "
            f"{loss_text} |"
        )
    for key, reason in result.skipped.items():
        lines.append(f"| {IMPLS[key].label} | skipped: {reason} | | | |")
    if REFERENCE in result.runs and "gemm" in result.runs:
        engine = statistics.median(seconds(result, REFERENCE))
        floor = statistics.median(seconds(result, "gemm"))
        lines += [
            "",
            f"Matrix products: {c.gemm_flop() / 1e9:.1f} GFLOP per run; mlpcli reaches "
            f"{c.gemm_flop() / engine / 1e9:.0f} GFLOP/s, {floor / engine:.0%} of the "
            f"matrix-products-only throughput measured alongside "
            f"({c.gemm_flop() / floor / 1e9:.0f} GFLOP/s).",
        ]
    return [*lines, ""]


# --------------------------------------------------------------------------- machine
def machine_info(threads: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": threads,
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["memory"] = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    )
    info["git"] = git.stdout.strip() or "?"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "mlpcli"], capture_output=True, text=True, cwd=HERE
    )
    if dirty.stdout.strip():
        info["git"] += " (mlpcli/ has uncommitted changes)"
    info["env"] = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP", "MKL"))}
    versions = {}
    for module in ("mlpcli", "numpy", "pandas", "typer", "threadpoolctl"):
        try:
            versions[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            continue
    info["versions"] = versions
    import numpy  # noqa: F401  (loads its BLAS, so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    info["threadpools"] = threadpool_info()
    return info


def versions_section(results: list[CaseResult], info: dict[str, Any]) -> list[str]:
    versions: dict[str, str] = dict(info["versions"])
    pools: dict[str, list[dict[str, Any]]] = {"driver (mlpcli commands)": info["threadpools"]}
    for result in results:
        native = "unset" in result.title
        for key, hello in result.hello.items():
            versions.update(hello.get("versions", {}))
            pools.setdefault(f"{key}, variables unset" if native else key, hello["threadpools"])
    lines = [
        "## Machine and versions",
        "",
        f"- Date: {info['date']}; git {info['git']}",
        f"- CPU: {info.get('cpu', '?')}, {info['cpus']} logical CPUs, {info.get('memory', '?')} "
        f"memory; {info['platform']}",
        f"- Python {info['python']}; "
        + "; ".join(f"{name} {version}" for name, version in sorted(versions.items())),
        f"- Threads: {info['threads']} for every implementation (threadpoolctl limits every "
        "BLAS and OpenMP pool in each worker; PyTorch also `torch.set_num_threads`).",
        "- Environment: "
        + (", ".join(f"`{k}={v}`" for k, v in sorted(info["env"].items())) or "no BLAS variables"),
        "",
        "Thread pools as threadpoolctl reports them in each worker (`architecture` is the BLAS "
        "kernel in use):",
        "",
        "| worker | library | API | version | kernel | threads |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, entries in pools.items():
        for pool in entries:
            lines.append(
                f"| {key} | {pool.get('prefix')} | {pool.get('internal_api')} | "
                f"{pool.get('version') or '-'} | {pool.get('architecture') or '-'} | "
                f"{pool.get('num_threads')} |"
            )
    return [*lines, ""]


# --------------------------------------------------------------------------- targets
def targets_section(results: dict[str, CaseResult], extra: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**not met**")

    main = results.get("main")
    if main is not None and REFERENCE in main.runs:
        engine = statistics.median(seconds(main, REFERENCE))
        rows.append(
            (
                "Engine, main case: seconds per epoch <= 0.30",
                f"{engine:.3f}",
                verdict(engine <= 0.3),
            )
        )
        for key, limit in (("sklearn64", 0.35), ("torch", 0.7)):
            if key in main.runs:
                r = statistics.median(pair_ratios(main, REFERENCE, key))
                rows.append(
                    (f"Engine / {IMPLS[key].label} <= {limit}", f"{r:.2f}", verdict(r <= limit))
                )
            else:
                rows.append((f"Engine / {IMPLS[key].label} <= {limit}", "skipped", "n/a"))
        if "numpy" in main.runs:
            r = statistics.median(pair_ratios(main, REFERENCE, "numpy"))
            rows.append(
                (
                    "Framework overhead over the bare NumPy loop <= 10%",
                    f"{r - 1:+.1%}",
                    verdict(r <= 1.10),
                )
            )
        if "gemm" in main.runs:
            share = statistics.median(seconds(main, "gemm")) / engine
            rows.append(
                (
                    "Throughput >= 60% of the matrix-products floor",
                    f"{share:.0%}",
                    verdict(share >= 0.60),
                )
            )
    small = results.get("small")
    if small is not None and REFERENCE in small.runs:
        s = statistics.median(seconds(small, REFERENCE))
        rows.append(("Small data (1,000 x 20, 200 epochs) <= 2 s", f"{s:.2f} s", verdict(s <= 2.0)))
    for label, value, ok in extra.get("targets", []):
        rows.append((label, value, verdict(ok)))
    lines = [
        "## Targets",
        "",
        "| target (issue 6) | measured (median) | verdict |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return [*lines, ""]


def targets16_section(measured: Measured, log: Any = None) -> list[str]:
    """Issue 16's targets, one row or more per function of `targets.py`, then the profile of
    every row not met, numbered as the table points to it."""
    rows = collect(measured)
    for row in unexplained(rows):
        if log is not None:
            log(f"  no profile for a target not met: {row.label}")
    lines = [
        "## Targets of issue 16",
        "",
        "| target (issue 16) | measured (median) | verdict |",
        "| --- | --- | --- |",
    ]
    profiles: list[str] = []
    shown: dict[tuple[str, ...], int] = {}  # a profile already printed -> its gap's number
    for row in rows:
        verdict = {True: "met", None: "n/a"}.get(row.ok, "**not met**")  # type: ignore[arg-type]
        if row.ok is False:
            number = 1 + sum(1 for line in profiles if line.startswith("### Gap "))
            verdict += f" (profile: gap {number})"
            profiles += [f"### Gap {number}: {row.label}", "", f"Measured: {row.measured}.", ""]
            if row.profile in shown:
                profiles += [f"The profile is gap {shown[row.profile]}'s.", ""]
            else:
                profiles += [*(row.profile or ("**No profile was measured for this gap.**",)), ""]
                shown.setdefault(row.profile, number)
        lines.append(f"| {row.label} | {row.measured} | {verdict} |")
    if profiles:
        lines += ["", "## Where the gaps come from: one profile per target not met", ""]
        lines += profiles
    return [*lines, ""]


def recipe_profiles(threads: int, members: int, log: Any) -> dict[str, Any]:
    """cProfiles of one recipe fit and of a K-member fit (shared batches) on the generated
    3-class table, 16 epochs: the profiles behind the recipe and ensemble rows."""
    import profiles

    table, epochs = "cls3k", 16
    found: dict[str, Any] = {}
    for key, k in (("recipe_one", 1), ("recipe_k", members)):
        log(f"  profile of the recipe, {k} member(s)")
        found[key] = profiles.recipe(table, epochs, k, "shared", threads)
        what = f"{table}, {epochs} epochs, {k} member(s), shared batches, {threads} thread(s)"
        found[key].update(what=what, k=k)
    return found


def startup_targets(found: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Issue 6's start-up rows (0.2 s), from startup.py's medians."""
    return [
        (f"`{name}` <= 0.2 s", f"{found['median'][name]:.3f} s", found["median"][name] <= 0.2)
        for name in ("mlpcli --help", "mlpcli train --help", "mlpcli inspect MODEL")
    ]


def uptime() -> str:
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"load average {load_average():.2f}"


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", default=None, help="Markdown file to write (default: stdout).")
    parser.add_argument("--quick", action="store_true", help="3 repeats; CSVs of 10k/100k rows.")
    parser.add_argument(
        "--cases",
        default="main,batch32,small,wide,regression,rprop",
        help="Comma-separated case names, in the order they run.",
    )
    parser.add_argument("--impls", default=",".join(IMPLS), help="Comma-separated workers.")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2).")
    parser.add_argument(
        "--repeats", type=int, default=None, help="Rounds per engine case (5; quick 3)."
    )
    parser.add_argument("--no-commands", action="store_true", help="Engine cases only.")
    parser.add_argument("--no-cases", action="store_true", help="Whole commands only.")
    parser.add_argument(
        "--no-startup", action="store_true", help="Skip the start-up timings (startup.py)."
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="Before each round, wait up to this long for the CPUs to be 80%% idle.",
    )
    parser.add_argument(
        "--native-blas",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Also run the main case with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset, when the "
        "environment sets them (default: on, off with --quick).",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("MLPCLI_BENCH_DATA", "/tmp/mlpcli-bench"),
        help="Where generated CSVs and models go (never the repository).",
    )
    parser.add_argument(
        "--rows",
        default=None,
        help="CSV sizes for whole commands (default 10000,100000,1000000; quick 10000,100000).",
    )
    parser.add_argument(
        "--no-recipe", action="store_true", help="Skip the recipe against RealMLP-TD."
    )
    parser.add_argument(
        "--realmlp-python",
        default=os.environ.get("MLPCLI_BENCH_REALMLP_PYTHON", sys.executable),
        help="The Python whose environment has pytabkit (RealMLP-TD); default this one.",
    )
    parser.add_argument(
        "--recipe-epochs",
        type=int,
        default=None,
        help="Epochs of the recipe comparison (default: the presets' 256; quick 16).",
    )
    parser.add_argument(
        "--recipe-tables",
        default=None,
        help="Tables of the recipe comparison (default: all of bench/recipe.py's; quick: the "
        "generated reg1k,cls3k).",
    )
    parser.add_argument(
        "--recipe-minutes",
        type=float,
        default=None,
        help="Start no recipe table after this many minutes of the recipe section (the "
        "tables left out are named in the report); default: no limit.",
    )
    parser.add_argument("--members", type=int, default=5, help="K of the ensemble row (5).")
    parser.add_argument(
        "--recipe-repeats", type=int, default=1, help="Rounds of the recipe comparison (1)."
    )
    parser.add_argument(
        "--command-repeats",
        type=int,
        default=None,
        help="Rounds of the whole commands on each CSV (3; quick 2; the 1M-row CSV at most 2).",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    command_repeats = args.command_repeats or (2 if args.quick else 3)
    if args.native_blas is None:
        args.native_blas = not args.quick

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    command = "python bench/run.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    info = machine_info(args.threads)
    uptime_before = uptime()
    started = time.perf_counter()
    durations: dict[str, float] = {}

    failures: list[str] = []

    def timed_section(name: str, since: float) -> None:
        durations[name] = time.perf_counter() - since
        log(f"{name}: {durations[name]:.0f} s")

    def guarded(name: str, run: Any) -> None:
        """Run one section; a section that fails is said in the report, and the sections
        measured before and after it are kept."""
        since = time.perf_counter()
        try:
            run()
        except Exception as exc:  # any failure: report it, keep the rest
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            log(traceback.format_exc())
        timed_section(name, since)

    results: dict[str, CaseResult] = {}
    extra: dict[str, Any] = {"targets": [], "sections": [], "figures": {}}
    figures = extra["figures"]

    def engine_cases() -> None:
        for name in args.cases.split(","):
            case = CASES[name]
            log(f"case {name}: {case.describe()}")
            results[name] = run_case(
                case, args.impls.split(","), args.threads, repeats, log, wait=args.wait_idle
            )
        if "main" in results and args.native_blas and os.environ.get("OPENBLAS_CORETYPE"):
            # The machine forces OpenBLAS's Haswell kernel; show what its own choice gives.
            env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
            case = CASES["main"]
            log("case main with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset")
            results["main-native"] = run_case(
                case,
                args.impls.split(","),
                args.threads,
                repeats,
                log,
                env=env,
                title=f"{case.title}, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (OpenBLAS "
                "picks its kernel; the targets above use the machine as it is)",
                wait=args.wait_idle,
            )

    def whole_commands() -> None:
        import commands

        rows = args.rows or ("10000,100000" if args.quick else "10000,100000,1000000")
        found = commands.run_all(
            Path(args.data_dir),
            [int(r) for r in rows.split(",")],
            threads=args.threads,
            repeats=command_repeats,
            log=log,
            wait=args.wait_idle,
        )
        extra["targets"] += found["targets"]
        extra["sections"] += found["sections"]
        figures.update(found["figures"])

    def batch32_steps() -> None:
        import stepcost

        log("batch 32: where one step goes")
        load = f"{os.getloadavg()[0]:.1f}"
        lines, found = stepcost.section(args.threads, repeats, load)
        extra["sections"].append(lines)
        figures["stepcost"] = found

    def recipe_section() -> None:
        import recipe

        log("recipe against RealMLP-TD")
        epochs = args.recipe_epochs if args.recipe_epochs is not None else 16 * args.quick
        tables = args.recipe_tables or ("reg1k,cls3k" if args.quick else ",".join(recipe.TABLES))
        found = recipe.run_all(
            tables.split(","),
            args.members,
            args.threads,
            args.recipe_repeats,
            epochs,
            args.realmlp_python,
            log,
            None if args.recipe_minutes is None else time.monotonic() + 60 * args.recipe_minutes,
        )
        figures.update(found["figures"])
        extra["sections"] += found["sections"]
        figures.setdefault("profiles", {}).update(recipe_profiles(args.threads, args.members, log))

    def startup_section() -> None:
        import startup

        log("start-up")
        found = startup.run_all(max(repeats, 7), log)
        figures.update(found["figures"])
        extra["sections"] += found["sections"]
        extra["targets"] += startup_targets(found["figures"]["startup"])

    # The sections in the order they run: the short ones and the targets' own first, so a
    # run stopped early (the report is written after each section) has the most of them.
    plan = [
        ("start-up", startup_section, not args.no_startup),
        ("whole commands, reading and their profiles", whole_commands, not args.no_commands),
        ("engine cases", engine_cases, not args.no_cases),
        ("batch 32 step profile", batch32_steps, not args.no_cases and "batch32" in args.cases),
        ("recipe against RealMLP-TD, and its profiles", recipe_section, not args.no_recipe),
    ]
    plan = [(name, run) for name, run, wanted in plan if wanted]

    def report(pending: list[str]) -> str:
        measured = Measured(cases=results, figures=figures)
        took = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in durations.items())
        lines = [
            "# mlpcli performance results",
            "",
            f"Generated by `{command}` in {time.perf_counter() - started:.0f} s ({took}). "
            f"`uptime` before: `{uptime_before}`; after: `{uptime()}`.",
            "",
        ]
        if pending:
            lines += [
                f"**Partial report**: written after the sections above; not run yet: "
                f"{', '.join(pending)} (their rows say not measured).",
                "",
            ]
        lines += [
            f"Rounds: engine cases and the batch-32 step profile {repeats}, whole commands "
            f"{command_repeats} (the 1,000,000-row CSV at most 2), reading and the scikit-learn "
            f"script 2 (bench/iobench.py), start-up {max(repeats, 7)}, the recipe "
            f"{args.recipe_repeats}: fewer where runs repeat within a few percent, to keep the "
            "run near half an hour. Figures are medians over the rounds with (min to max); "
            "ratios are taken per round, between runs made seconds apart. See bench/README.md.",
            "",
        ]
        if failures:
            lines += ["**Sections that failed in this run** (their rows say not measured):", ""]
            lines += [f"- {failure}" for failure in failures] + [""]
        lines += targets16_section(measured, log if not pending else None)
        lines += targets_section(results, extra)
        if results:
            lines += ["## Engine: the same training run, side by side", ""]
            lines += [
                "Each run builds a fresh network and trains it on arrays already in memory (no "
                "CSV): construction and training are timed together. Same data, architecture, "
                "relu, optimizer, learning rate, batch size, epochs and seed-free shuffling in "
                "every implementation; scikit-learn with `alpha=0`, `tol=0`, no early stopping.",
                "",
            ]
            for result in results.values():
                lines += case_table(result)
        for section in extra["sections"]:
            lines += section
        lines += outofcore_section(measured)
        lines += versions_section(list(results.values()), info)
        return "\n".join(lines).rstrip() + "\n"

    for i, (name, run) in enumerate(plan):
        guarded(name, run)
        if args.out and i + 1 < len(plan):
            Path(args.out).write_text(report([later for later, _ in plan[i + 1 :]]))
    text = report([])
    if args.out:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
