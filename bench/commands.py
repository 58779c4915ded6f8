"""Whole commands as a user runs them: `mlpcli train` and `mlpcli predict` on generated CSVs,
start-up time, and run-to-run determinism for a fixed thread count.

Generated data and models go to a directory outside the repository (`--data-dir`, by default
/tmp/mlpcli-bench); CSVs are reused between runs of the benchmark when their size matches.
Wall time and peak memory come from `/usr/bin/time -v` when it exists, else from
`resource.getrusage(RUSAGE_CHILDREN)` (peak memory then only when it grows run over run).
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from idle import cpu_snapshot, others_share, wait_idle
from startup import USER_ENV
from targets import STAGES

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MLPCLI = str(BIN / "mlpcli") if (BIN / "mlpcli").exists() else "mlpcli"
N_FEATURES = 100
#: The main case's network and batch, five epochs, the classic preset named (the issue's case is
#: the classic network, whatever the default preset); everything else as default.
TRAIN_FLAGS = [
    "--target", "label", "--id", "sample", "--hidden", "256,128", "--batch-size", "256",
    "--epochs", "5", "--patience", "off", "--seed", "0", "--preset", "classic",
]  # fmt: skip
Log = Callable[[str], None]


# --------------------------------------------------------------------------- data
def make_csv(path: Path, n_rows: int, seed: int = 7) -> Path:
    """`sample,f000..f099,label`: standard normal features (5 decimals), 3 classes from a random
    one-hidden-layer teacher. About 870 bytes a row; skipped when the file is already there."""
    marker = path.with_suffix(".complete")
    if path.exists() and marker.exists() and marker.read_text() == str(n_rows):
        return path
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((N_FEATURES, 16)) / np.sqrt(N_FEATURES)
    B = rng.standard_normal((16, 3))
    fmt = ["s%07d", *(["%.5f"] * N_FEATURES), "c%d"]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(",".join(["sample", *(f"f{j:03d}" for j in range(N_FEATURES)), "label"]) + "\n")
        for start in range(0, n_rows, 50_000):
            m = min(50_000, n_rows - start)
            X = rng.standard_normal((m, N_FEATURES))
            label = (np.tanh(X @ A) @ B).argmax(axis=1)
            rows = np.column_stack([np.arange(start + 1, start + m + 1), X, label])
            np.savetxt(f, rows, fmt=fmt, delimiter=",")
    tmp.replace(path)
    marker.write_text(str(n_rows))
    return path


def size_name(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1_000}k"


# --------------------------------------------------------------------------- running
def timed_run(
    cmd: list[str], env: dict[str, str] | None = None, wait: float = 0.0, attempts: int = 3
) -> dict[str, Any]:
    """Wall seconds, peak RSS (bytes) and exit code of one command. With `wait`, first wait for
    idle CPUs, and repeat a run during which other processes used over a quarter of the CPUs."""
    run: dict[str, Any] = {}
    for attempt in range(1, attempts + 1):
        wait_idle(wait)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        before = cpu_snapshot()
        run = _timed_run(cmd, env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        run["others"] = others_share(before, cpu_snapshot(), own)
        run["attempts"] = attempt
        if wait <= 0 or run["others"] <= 0.25 or run["code"] != 0:
            break
    return run


def calibrate(seconds: float = 1.0) -> float:
    """GFLOP/s of a (256 x 256) float32 matrix product loop: the host's speed at the moment
    (shared VMs run slower at times, for every program alike)."""
    from threadpoolctl import threadpool_limits

    A = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)
    out = np.empty_like(A)
    n = 0
    with threadpool_limits(1, user_api="blas"):
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(20):
                np.matmul(A, A, out=out)
            n += 20
        return 2 * 256**3 * n / (time.perf_counter() - started) / 1e9


def _timed_run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    time_bin = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    started = time.perf_counter()
    if time_bin:
        proc = subprocess.run(
            [time_bin, "-v", *cmd], capture_output=True, text=True, env=env, check=False
        )
        wall = time.perf_counter() - started
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak = int(found.group(1)) * 1024 if found else None
    else:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peak = after * 1024 if after > before else None
    return {"seconds": wall, "peak": peak, "code": proc.returncode, "stderr": proc.stderr[-2000:]}


def has_command(name: str) -> bool:
    proc = subprocess.run([MLPCLI, name, "--help"], capture_output=True, text=True, check=False)
    return proc.returncode == 0


def spread(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


# --------------------------------------------------------------------------- sections
def _predict_figures(runs: list[dict[str, Any]], n: int, peaks: dict[int, int]) -> dict[str, Any]:
    """targets.predict_rate's figures: the median rate, and the peak beside the next size
    down's (flat memory: ten times the rows must not need much more)."""
    below = [m for m in peaks if m < n]
    return {
        "rows": n,
        "rate": statistics.median(n / r["seconds"] for r in runs),
        "peak": max((r["peak"] or 0 for r in runs), default=0),
        "peak_below": peaks[max(below)] if below else None,
        "rows_below": max(below) if below else None,
    }


def whole_commands(
    data_dir: Path,
    sizes: list[int],
    threads: int,
    repeats: int,
    log: Log,
    wait: float = 0.0,
    figures: dict[str, Any] | None = None,
) -> tuple[list[str], list[tuple[str, str, bool | None]], dict[int, Path]]:
    """`train`, then `predict` twice (the first run, which parses, and from the table cache an
    untimed predict filled), each size `repeats` rounds (the 1M-row CSV at most 2)."""
    predict = has_command("predict")
    cache = data_dir / "cache"
    rows_md = [
        "## Whole commands on generated CSVs",
        "",
        f"`mlpcli train DATA.csv --out MODEL.npz {' '.join(TRAIN_FLAGS)} --threads {threads} "
        "--quiet --no-cache` (5 epochs of the main case's network; 20% of the rows validate, "
        "the default), then `mlpcli predict MODEL.npz DATA.csv --out PRED.csv --quiet` on the "
        "same file: its first run (`--no-cache`: parses the CSV) and a cached run (`--cache "
        "DIR`, after one untimed predict with the same `--cache` filled the entry). CSVs: 100 "
        "float features with 5 decimals, an ID column and a 3-class label; page cache warm. "
        "Wall time and peak resident memory from `/usr/bin/time -v`.",
        "",
        "| rows | CSV size | rounds | train: seconds | train: peak memory | peak / float32 "
        "features | predict, first run: rows per second | peak memory | predict, cached: rows "
        "per second | peak memory |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    targets: list[tuple[str, str, bool | None]] = []
    models: dict[int, Path] = {}
    peaks: dict[str, dict[int, int]] = {"predict": {}, "predict_cached": {}}
    repeated = 0
    for n in sizes:
        csv = data_dir / f"train_{size_name(n)}.csv"
        log(f"  CSV {csv} ({n:,} rows)")
        make_csv(csv, n)
        model = data_dir / f"model_{size_name(n)}.npz"
        pred = data_dir / f"pred_{size_name(n)}.csv"
        train_cmd = [MLPCLI, "train", str(csv), "--out", str(model), *TRAIN_FLAGS]
        # No table cache: every round parses, as a first run does (iobench.py times the cache).
        train_cmd += ["--threads", str(threads), "--quiet", "--no-cache"]
        predict_cmd = [MLPCLI, "predict", str(model), str(csv), "--out", str(pred), "--quiet"]
        commands = {
            "predict": [*predict_cmd, "--no-cache"],
            "predict_cached": [*predict_cmd, "--cache", str(cache)],
        }
        train_runs: list[dict[str, Any]] = []
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in commands}
        rounds = repeats if n < 1_000_000 else max(1, min(repeats, 2))
        for r in range(rounds):
            run = timed_run(train_cmd, env=USER_ENV, wait=wait)  # with .pyc, as a user runs
            repeated += run["attempts"] - 1
            if run["code"] != 0:
                log(f"  train failed ({run['code']}): {run['stderr']}")
                break
            train_runs.append(run)
            log(f"  train {size_name(n)} round {r + 1}: {run['seconds']:.2f} s")
            if predict and r == 0:  # fills the cache entry the cached runs read
                subprocess.run(commands["predict_cached"], env=USER_ENV, capture_output=True)
            for key, cmd in commands.items() if predict else ():
                run = timed_run(cmd, env=USER_ENV, wait=wait)
                repeated += run["attempts"] - 1
                if run["code"] != 0:
                    log(f"  {key} failed ({run['code']}): {run['stderr']}")
                    predict = False
                    break
                runs[key].append(run)
                log(f"  {key} {size_name(n)} round {r + 1}: {run['seconds']:.2f} s")
        if not train_runs:
            rows_md.append(f"| {n:,} | | | failed | | | | | | |")
            continue
        models[n] = model
        feature_bytes = n * N_FEATURES * 4
        train_peak = max(r["peak"] or 0 for r in train_runs) or None
        ratio = "-" if train_peak is None else f"{train_peak / feature_bytes:.1f}x"
        cells = []
        for key, key_runs in runs.items():
            if not key_runs:
                cells.append("not available | ")
                continue
            cells.append(
                f"{spread([n / r['seconds'] for r in key_runs], 0)} | "
                f"{gib(max(r['peak'] or 0 for r in key_runs))}"
            )
            found = _predict_figures(key_runs, n, peaks[key])
            peaks[key][n] = found["peak"]
            if figures is not None and n == max(sizes):
                figures[key] = found
        rows_md.append(
            f"| {n:,} | {csv.stat().st_size / 2**20:,.0f} MiB | {len(train_runs)} | "
            f"{spread([r['seconds'] for r in train_runs])} | {gib(train_peak)} | {ratio} | "
            + " | ".join(cells)
            + " |"
        )
        if figures is not None and train_peak is not None:
            figures.setdefault("train_peak", {})[n] = (train_peak, feature_bytes)
        if n == max(sizes) and n >= 1_000_000 and train_peak is not None:
            ok = train_peak <= 3 * feature_bytes
            targets.append(
                (
                    f"`train` on {n:,} x 100: peak memory <= 3x the float32 features "
                    f"({gib(3 * feature_bytes)})",
                    f"{gib(train_peak)} ({train_peak / feature_bytes:.1f}x)",
                    ok,
                )
            )
        if n == max(sizes) and runs["predict"]:
            found = _predict_figures(runs["predict"], n, peaks["predict"])
            below = found["rows_below"]
            targets.append(
                (
                    f"`predict` on {n:,} rows (first run): >= 200,000 rows/s",
                    f"{found['rate']:,.0f} rows/s",
                    (found["rate"] >= 200_000) if n >= 1_000_000 else None,
                )
            )
            targets.append(
                (
                    "`predict`: flat memory (peak at the largest CSV <= 1.5x the next size down)",
                    f"{gib(found['peak'])} at {n:,} rows"
                    + (f", {gib(found['peak_below'])} at {below:,}" if below else ""),
                    found["peak"] <= 1.5 * found["peak_below"] if below else None,
                )
            )
    rows_md += [
        "",
        f"{repeated} run(s) were repeated because other processes used over a quarter of the "
        "CPUs during them.",
    ]
    if not predict:
        rows_md += ["", "`mlpcli predict` did not run on every size (see the log)."]
    return [*rows_md, ""], targets, models


def phases(
    data_dir: Path, n: int, threads: int, log: Log, wait: float = 0.0
) -> tuple[list[str], list[tuple[str, str, bool | None]], dict[str, Any] | None]:
    """Stage-by-stage time and memory of `train` on the largest CSV (bench/phases.py)."""
    csv = data_dir / f"train_{size_name(n)}.csv"
    out = data_dir / f"phases_{size_name(n)}.npz"
    log(f"  phases of train on {csv}")
    cmd = [sys.executable, str(HERE / "phases.py"), str(csv), str(out), *TRAIN_FLAGS]
    cmd += ["--threads", str(threads)]
    wait_idle(wait)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=USER_ENV)
    if proc.returncode != 0:
        return [f"Phase profile failed: {proc.stderr[-1000:]}", ""], [], None
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    total = report["total_seconds"]
    stages = report["stages"]
    lines = [
        f"### Where `train` spends time and memory: {report['n_rows']:,} rows x "
        f"{report['n_features']} features",
        "",
        f"`python bench/phases.py` runs the train workflow in-process with each stage timed "
        f"(seconds exclusive of the stages nested in it) and resident memory sampled every "
        f"10 ms. Total {total:.1f} s, of which imports {report['import_seconds']:.2f} s; peak "
        f"resident memory {gib(report['peak_rss'])}, "
        f"{report['peak_rss'] / report['feature_bytes_float32']:.1f}x the float32 feature "
        f"matrix ({gib(report['feature_bytes_float32'])}).",
        "",
        "| stage | seconds | share of the run | peak memory during the stage |",
        "| --- | --- | --- | --- |",
        f"| {STAGES['imports']} | {report['import_seconds']:.2f} | "
        f"{report['import_seconds'] / total:.0%} | |",
    ]
    for name, label in STAGES.items():
        if name in stages:
            s = stages[name]
            if name == "fit_model":
                label += f" ({report['epochs']} epochs)"
            lines.append(
                f"| {label} | {s['exclusive']:.2f} | {s['exclusive'] / total:.0%} | "
                f"{gib(s['peak_rss'])} |"
            )
    load = report["import_seconds"] + sum(
        stages[k]["exclusive"]
        for k in ("read", "load_table", "prepare_data", "encode_split")
        if k in stages
    )
    lines.append("")
    if report.get("prepared_rss"):
        lines += [
            f"When training starts the process holds {gib(report['prepared_rss'])} resident, of "
            f"which the prepared arrays and the ID/split table are "
            f"{gib(report['prepared_live'])}: the rest is the interpreter, the libraries, and "
            "memory that reading and preprocessing freed but the C allocator keeps for reuse.",
            "",
        ]
    ok = (load / total <= 0.25) if report["n_rows"] >= 1_000_000 else None
    targets = [
        (
            f"`train` on {report['n_rows']:,} x 100, 5 epochs: loading + preprocessing <= 25% "
            "of the run",
            f"{load:.1f} s of {total:.1f} s ({load / total:.0%})",
            ok,
        )
    ]
    return lines, targets, report


def import_profile(cmd: list[str], env: dict[str, str], top: int = 6) -> list[tuple[float, str]]:
    """The costliest top-level imports of a command (`python -X importtime`): (seconds with
    what each imports, module)."""
    code = f"import sys; sys.argv = {['mlpcli', *cmd[1:]]!r}\nfrom mlpcli.cli import main\nmain()"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env
    )
    found = []
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match:  # no indentation: imported by the command itself, not by another module
            found.append((int(match.group(1)) / 1e6, match.group(2)))
    found.sort(reverse=True)
    return found[:top]


HEAVY = ("numpy", "pandas", "joblib", "threadpoolctl", "sklearn", "torch", "matplotlib", "scipy")


def heavy_imports(cmd: list[str], env: dict[str, str]) -> str:
    """Which heavy modules a command imports (run in-process, modules listed at exit)."""
    code = (
        "import sys, atexit\n"
        f"HEAVY = {HEAVY!r}\n"
        "atexit.register(lambda: sys.stderr.write('HEAVY:' + ','.join("
        "m for m in HEAVY if m in sys.modules) + '\\n'))\n"
        f"sys.argv = {['mlpcli', *cmd[1:]]!r}\n"
        "from mlpcli.cli import main\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    match = re.search(r"HEAVY:(.*)", proc.stderr)
    return (match.group(1) or "none") if match else "?"


def startup_imports(model: Path | None) -> dict[str, dict[str, Any]]:
    """What each start-up command imports: the profile behind a start-up row not met."""
    cmds = {"mlpcli --help": [MLPCLI, "--help"], "mlpcli train --help": [MLPCLI, "train", "--help"]}
    if model is not None:
        cmds["mlpcli inspect MODEL"] = [MLPCLI, "inspect", str(model)]
    for cmd in cmds.values():  # the kept help and the .pyc files written, as a second run finds
        subprocess.run(cmd, capture_output=True, env=USER_ENV, check=False)
    return {
        name: {"heavy": heavy_imports(cmd, USER_ENV), "top": import_profile(cmd, USER_ENV)}
        for name, cmd in cmds.items()
    }


def determinism(data_dir: Path, threads: int, log: Log) -> list[str]:
    """Train twice per thread count with the same seed; compare every array bit for bit."""
    csv = make_csv(data_dir / "train_10k.csv", 10_000)
    outputs: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    counts = sorted({1, threads})
    for t in counts:
        for r in range(2):
            model = data_dir / f"determinism_t{t}_r{r}.npz"
            flags = [*TRAIN_FLAGS, "--threads", str(t), "--quiet", "--no-cache"]
            proc = subprocess.run(
                [MLPCLI, "train", str(csv), "--out", str(model), *flags],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                return ["## Determinism", "", f"train failed: {proc.stderr[-500:]}", ""]
            with np.load(model, allow_pickle=False) as z:
                outputs[(t, r)] = {
                    k: z[k] for k in z.files if z[k].dtype.kind in "fiu" and k.startswith("net.")
                }
    lines = [
        "## Determinism",
        "",
        "`mlpcli train` on the 10k-row CSV twice per thread count (`--threads N`, same seed), "
        "comparing every network array of the two model files bit for bit.",
        "",
        "| threads | run 1 vs run 2 |",
        "| --- | --- |",
    ]
    for t in counts:
        a, b = outputs[(t, 0)], outputs[(t, 1)]
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        diff = max(float(np.max(np.abs(a[k] - b[k]))) for k in a) if not same else 0.0
        lines.append(f"| {t} | {'identical' if same else f'differ (max {diff:.2g})'} |")
    if len(counts) > 1:
        a, b = outputs[(counts[0], 0)], outputs[(counts[-1], 0)]
        diff = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
        lines += [
            "",
            f"Between {counts[0]} and {counts[-1]} threads the weights differ by at most "
            f"{diff:.2g}: BLAS splits sums differently per thread count, so results are "
            "reproducible for a fixed `--threads`, not across counts.",
        ]
    log("  determinism checked")
    return [*lines, ""]


def run_all(
    data_dir: Path, sizes: list[int], threads: int, repeats: int, log: Log, wait: float = 0.0
) -> dict[str, Any]:
    """Whole commands, the train stage profile, determinism, iobench's reading, cache and
    whole-train figures, and the profiles behind their targets (`profiles.py`)."""
    import profiles

    data_dir.mkdir(parents=True, exist_ok=True)
    log(f"whole commands in {data_dir}")
    sections: list[list[str]] = []
    speed_before = calibrate()
    figures: dict[str, Any] = {}
    table, targets, models = whole_commands(data_dir, sizes, threads, repeats, log, wait, figures)
    speed_after = calibrate()
    table[-1:-1] = [
        "",
        f"Host speed while these ran: a (256 x 256) float32 matrix product loop on one thread "
        f"ran at {speed_before:.0f} GFLOP/s before and {speed_after:.0f} GFLOP/s after. Shared "
        "VMs run slower at times, every program alike: a lower figure in another run of this "
        "benchmark means its timings are slower by about the same factor.",
    ]
    sections.append(table)
    found: dict[str, Any] = figures.setdefault("profiles", {})
    if models:
        n = max(models)
        csv, out = data_dir / f"train_{size_name(n)}.csv", data_dir / "pred_profile.csv"
        log("  profiles of predict, the first run and the cached one")
        found["predict"] = profiles.predict(models[n], csv, out)
        found["predict_cached"] = profiles.predict(models[n], csv, out, data_dir / "cache")
    if sizes:
        lines, more, report = phases(data_dir, max(sizes), threads, log, wait)
        sections.append(lines)
        targets += more
        figures["phases"] = report
    log("  imports of the start-up commands")
    figures["startup_imports"] = startup_imports(models.get(min(models)) if models else None)
    sections.append(determinism(data_dir, threads, log))
    if sizes:
        import iobench

        big = data_dir / f"train_{size_name(max(sizes))}.csv"
        log("  reading, table cache, train against the scikit-learn script (iobench.py)")
        main_csv = data_dir / "train_100k.csv"
        figures["io"] = iobench.measure(
            big, make_csv(main_csv, 100_000) if 100_000 in sizes else None
        )
        log("  profiles of reading and of the cache hit")
        found["read"] = profiles.read(big)
        found["cache_hit"] = profiles.cache_hit(big)
    return {"targets": targets, "sections": sections, "figures": figures}
