"""Out-of-core benchmark (issue 17): train 2 epochs on a CSV whose float32 matrix is at least 4x
the memory `train` may use, under a memory cgroup, against the in-memory path on a sample that fits.

    python bench/outofcore.py generate DIR --rows 11000000      # once; 3.9 GB of CSV
    python bench/outofcore.py run DIR --limit-mib 512 --json DIR/results.json
    python bench/outofcore.py clean DIR

`generate` writes DIR/big.csv (50 float features with 3 decimals, a 0/1 target from a noisy
nonlinear rule) and DIR/sample.csv (its first `--sample-rows` rows) with plain byte arithmetic
(formatting floats through pandas runs at ~2k rows/s on a loaded machine). `run` trains:

1. the CSV converted into the table cache, in chunks, inside a cgroup v1 memory group of
   `--limit-mib` (memory + swap), timed by /usr/bin/time -v (peak RSS);
2. `mlpcli train big.csv --out-of-core on` from that cache entry, in the same group; meanwhile
   `mlpcli train sample.csv --out-of-core off` (in memory, no limit), so both see the same load;
3. `--out-of-core on` on the sample: the same table both ways, for the validation metric;
4. under the same limit: the preparation alone (`outofcore.prepare_data`, its anonymous peak),
   `mlpcli evaluate` of the model, `mlpcli cv --out-of-core on` (`--folds 2`, 1 epoch: each
   fold built from the cache entry) and `mlpcli explain --out-of-core on` of the model with the
   50 features in 2 `--group-features` groups and `--repeats 1` (4 passes over 11M rows).
   `run ... --only cv,explain` runs some of the steps on the cache and model already there
   (`--model NAME`: another model file in DIR for evaluate and explain).

Throughput is training rows per second of the epochs (`history` seconds), so reading and
preprocessing are reported apart. Needs root for the cgroup (else it reports peak RSS only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

N_FEATURES = 50
CGROUP = Path("/sys/fs/cgroup/memory")
#: `mlpcli train` options of every run unless others are given after the command.
DEFAULT_OPTIONS = [
    "--epochs",
    "2",
    "--batch-size",
    "256",
    "--hidden",
    "64",
    "--patience",
    "5",
    "--threads",
    "1",
]


def generate(folder: Path, rows: int, sample_rows: int, seed: int = 0) -> None:
    """big.csv and sample.csv; each value is written as [+-]d.ddd (7 bytes with its comma)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = rng.normal(size=N_FEATURES) / np.sqrt(N_FEATURES)
    header = (",".join(f"f{i}" for i in range(N_FEATURES)) + ",y\n").encode()
    chunk = 200_000
    with open(folder / "big.csv", "wb") as big, open(folder / "sample.csv", "wb") as sample:
        big.write(header)
        sample.write(header)
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            X = np.clip(rng.standard_normal(size=(m, N_FEATURES), dtype=np.float32), -9.999, 9.999)
            logit = 2.0 * (X @ w) + 0.8 * np.sin(2 * X[:, 0]) * X[:, 1] - 0.5 * X[:, 2] ** 2 + 0.5
            y = (rng.random(m) < 1 / (1 + np.exp(-logit))).astype(np.uint8)
            milli = np.rint(np.abs(X) * 1000).astype(np.int16)
            cells = np.empty((m, N_FEATURES, 7), np.uint8)
            cells[:, :, 0] = np.where(X < 0, ord("-"), ord("+"))
            cells[:, :, 1] = ord("0") + milli // 1000
            cells[:, :, 2] = ord(".")
            cells[:, :, 3] = ord("0") + milli // 100 % 10
            cells[:, :, 4] = ord("0") + milli // 10 % 10
            cells[:, :, 5] = ord("0") + milli % 10
            cells[:, :, 6] = ord(",")
            line = np.empty((m, N_FEATURES * 7 + 2), np.uint8)
            line[:, :-2] = cells.reshape(m, -1)
            line[:, -2] = ord("0") + y
            line[:, -1] = ord("\n")
            data = line.tobytes()
            big.write(data)
            if start < sample_rows:
                sample.write(line[: sample_rows - start].tobytes())
    old = time.time() - 60  # let the table cache record the files (it skips just-changed ones)
    for name in ("big.csv", "sample.csv"):
        os.utime(folder / name, (old, old))


def _cgroup(limit: int) -> Path | None:
    group = CGROUP / f"mlpcli-ooc-bench-{os.getpid()}"  # runs at once have groups of their own
    try:
        group.mkdir(exist_ok=True)
        (group / "memory.limit_in_bytes").write_text(str(limit))
        swap = group / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(limit))
        (group / "memory.max_usage_in_bytes").write_text("0")
        (group / "memory.failcnt").write_text("0")
        return group
    except OSError as error:
        print(f"no memory cgroup ({error}); peak RSS only", file=sys.stderr)
        return None


def train(
    folder: Path, table: str, mode: str, name: str, limit: int | None, extra: list[str]
) -> dict:
    """One `mlpcli train` under /usr/bin/time -v (and the cgroup); its figures."""
    metrics = folder / f"{name}.json"
    command = [sys.executable, "-m", "mlpcli", "train", str(folder / table), "--target", "y",
               "--out", str(folder / f"{name}.npz"), "--metrics-out", str(metrics),
               "--out-of-core", mode, *extra]  # fmt: skip
    env = {**os.environ, "MLPCLI_CACHE_DIR": str(folder / "cache"), "NO_COLOR": "1"}
    done, wall, figures = _run(command, limit, env)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1]) * 1024
    doc = json.loads(metrics.read_text())
    training = doc["training"]
    history = json.loads(json.dumps(doc.get("training", {})))
    result = {
        "name": name,
        "table": table,
        "mode": mode,
        "wall_seconds": round(wall, 1),
        "train_seconds": training["seconds"],
        "n_train": training["n_train"],
        "n_valid": training["n_valid"],
        "epochs": training["epochs_run"],
        "rows_per_second": round(
            training["n_train"] * training["epochs_run"] / training["seconds"]
        ),
        "peak_rss_bytes": peak,
        "validation": {
            k: doc["metrics"]["validation"].get(k) for k in ("accuracy", "roc_auc", "log_loss")
        },
        "stderr_tail": done.stderr.splitlines()[:6],
        "history": history.get("history"),
    }
    result.update(figures)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}), flush=True)
    return result


def _limited(limit: int | None) -> tuple[list[str], Path | None]:
    """The command prefix that runs a child under /usr/bin/time -v and, with a limit, inside
    the memory cgroup (the child joins it before exec: everything it allocates is limited)."""
    group = _cgroup(limit) if limit else None
    prefix = ["/usr/bin/time", "-v"]
    if group is not None:
        prefix = ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *prefix]
    return prefix, group


def _run(
    command: list[str], limit: int | None, env: dict
) -> tuple[subprocess.CompletedProcess, float, dict]:
    """`command` under /usr/bin/time -v (and the cgroup), its wall time, and the cgroup's
    figures with the peak of its anonymous memory (`rss` of memory.stat, sampled every 0.1 s:
    what the limit must hold; /usr/bin/time's peak RSS also counts mapped library pages)."""
    prefix, group = _limited(limit)
    started = time.perf_counter()
    child = subprocess.Popen([*prefix, *command], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    peak = [0]

    def sample() -> None:
        while child.poll() is None and group is not None:
            for line in (group / "memory.stat").read_text().splitlines():
                if line.startswith("rss "):
                    peak[0] = max(peak[0], int(line.split()[1]))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    sampler.join()
    wall = time.perf_counter() - started
    figures = _group_figures(group, limit)
    if group is not None:
        figures["cgroup_peak_anon_bytes"] = peak[0]
    return subprocess.CompletedProcess(command, child.returncode, out, err), wall, figures


def _group_figures(group: Path | None, limit: int | None) -> dict:
    if group is None:
        return {}
    oom = (group / "memory.oom_control").read_text()
    return {
        "cgroup_limit_bytes": limit,
        "cgroup_max_usage_bytes": int((group / "memory.max_usage_in_bytes").read_text()),
        "cgroup_failcnt": int((group / "memory.failcnt").read_text()),
        "cgroup_oom_kills": int(re.search(r"oom_kill (\d+)", oom)[1]) if "oom_kill" in oom else 0,
    }


def convert(folder: Path, limit: int | None) -> dict:
    """The table converted into the cache, in chunks, under the same memory limit (the cache
    writer writes its pages back as it goes: cgroup v1 counts dirty page cache)."""
    code = (
        "import sys, time; from mlpcli import outofcore; from mlpcli.config import "
        "resolve; t = time.perf_counter(); outofcore.cached_table(sys.argv[1], "
        "resolve({'target': ['y']})); print(time.perf_counter() - t)"
    )
    env = {**os.environ, "MLPCLI_CACHE_DIR": str(folder / "cache")}
    done, _, figures = _run([sys.executable, "-c", code, str(folder / "big.csv")], limit, env)
    if done.returncode != 0:
        raise SystemExit(f"convert failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1]) * 1024
    result = {"seconds": round(float(done.stdout.split()[-1]), 1), "peak_rss_bytes": peak}
    result.update(figures)
    print(json.dumps({"convert": result}), flush=True)
    return result


def evaluate(folder: Path, model: str, table: str, limit: int | None) -> dict:
    """`mlpcli evaluate MODEL TABLE` under the limit: its metrics are streamed."""
    out = folder / "evaluate.json"
    env = {**os.environ, "MLPCLI_CACHE_DIR": str(folder / "cache"), "NO_COLOR": "1"}
    command = [sys.executable, "-m", "mlpcli", "evaluate", str(folder / model),
               str(folder / table), "--out", str(out), "-q"]  # fmt: skip
    done, wall, figures = _run(command, limit, env)
    if done.returncode != 0:
        raise SystemExit(f"evaluate failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1]) * 1024
    metrics = json.loads(out.read_text())["metrics"]
    result = {
        "wall_seconds": round(wall, 1),
        "n_samples": metrics["n_samples"],
        "rows_per_second": round(metrics["n_samples"] / wall),
        "peak_rss_bytes": peak,
        "accuracy": metrics["accuracy"],
        "roc_auc": metrics["roc_auc"],
        **figures,
    }
    print(json.dumps({"evaluate": result}), flush=True)
    return result


def _command(folder: Path, name: str, command: list[str], limit: int | None) -> dict:
    """Any command under the limit: its wall time, peak RSS and the cgroup's figures."""
    env = {**os.environ, "MLPCLI_CACHE_DIR": str(folder / "cache"), "NO_COLOR": "1"}
    done, wall, figures = _run(command, limit, env)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1]) * 1024
    result = {"wall_seconds": round(wall, 1), "peak_rss_bytes": peak, **figures}
    return result


def prepare(folder: Path, limit: int | None) -> dict:
    """`outofcore.prepare_data` of big.csv from the cache, alone: the preparation's peak."""
    code = (
        "import sys, time, numpy as np; from mlpcli import outofcore; from mlpcli.config "
        "import resolve; t = time.perf_counter(); p = outofcore.prepare_data(sys.argv[1], "
        "resolve({'target': ['y']}), np.random.default_rng(0)); "
        "print(len(p.X), time.perf_counter() - t)"
    )
    command = [sys.executable, "-c", code, str(folder / "big.csv")]
    result = _command(folder, "prepare", command, limit)
    print(json.dumps({"prepare": result}), flush=True)
    return result


def cross_validate(folder: Path, limit: int | None, extra: list[str]) -> dict:
    """`mlpcli cv big.csv --out-of-core on --folds 2`, 1 epoch a fold, under the limit."""
    out = folder / "cv.json"
    options = [*extra]
    if "--epochs" in options:
        options[options.index("--epochs") + 1] = "1"
    command = [sys.executable, "-m", "mlpcli", "cv", str(folder / "big.csv"), "--target", "y",
               "--folds", "2", "--out-of-core", "on", "--out", str(out), "-q",
               *options]  # fmt: skip
    result = _command(folder, "cv", command, limit)
    doc = json.loads(out.read_text())
    result["per_fold"] = [
        {k: fold[k] for k in ("n_train", "n_valid", "n_test", "seconds")}
        | {"accuracy": fold["metrics"]["accuracy"], "roc_auc": fold["metrics"]["roc_auc"]}
        for fold in doc["per_fold"]
    ]
    result["accuracy"] = doc["metrics"]["accuracy"]["mean"]
    print(json.dumps({"cv": result}), flush=True)
    return result


#: Features per `--group-features` group of the explain step: 2 columns of 11M rows (88 MB)
#: beside the pass's permutation, targets and outputs fit in 512 MiB; 5 were OOM-killed.
EXPLAIN_GROUP = 2


def explain(folder: Path, model: str, limit: int | None) -> dict:
    """`mlpcli explain MODEL big.csv --out-of-core on` with groups of `EXPLAIN_GROUP`
    features, 1 repeat: one gathering pass, one pass per group, and the unshuffled pass.
    (Wider groups are refused: with a pass's other arrays they would not fit in the limit.)"""
    groups = folder / "groups.toml"
    lines = [
        f"g{start} = {[f'f{i}' for i in range(start, min(start + EXPLAIN_GROUP, N_FEATURES))]}"
        for start in range(0, N_FEATURES, EXPLAIN_GROUP)
    ]
    groups.write_text("\n".join(lines).replace("'", '"') + "\n")
    out = folder / "explain.csv"
    command = [sys.executable, "-m", "mlpcli", "explain", str(folder / model),
               str(folder / "big.csv"), "--out-of-core", "on", "--repeats", "1",
               "--group-features", str(groups), "--out", str(out), "-q"]  # fmt: skip
    result = _command(folder, "explain", command, limit)
    result["importance"] = out.read_text().splitlines()[:3]
    print(json.dumps({"explain": result}), flush=True)
    return result


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run(
    folder: Path,
    limit_mib: int,
    out: Path | None,
    extra: list[str],
    only: set[str] | None,
    model: str = "ooc-cached.npz",
) -> None:
    limit = limit_mib << 20
    size = (folder / "big.csv").stat().st_size
    with open(folder / "big.csv", "rb") as handle:
        columns = handle.readline().count(b",") + 1
    results: dict = {"uptime_before": _uptime(), "big_csv_bytes": size, "table_columns": columns}
    wanted = only or set(STEPS)

    def save() -> None:  # after every step: a step that fails keeps the ones before it
        if out is not None:
            out.write_text(json.dumps({**results, "uptime_after": _uptime()}, indent=2) + "\n")

    if "convert" in wanted:
        results["convert"] = convert(folder, limit)
        save()
    if "train" in wanted:
        # The in-memory run on the sample runs alongside, so both see the same machine load.
        with subprocess.Popen([sys.executable, __file__, "_train", str(folder), "sample.csv",
                               "off", "sample-memory", "0", *extra]):  # fmt: skip
            results["second"] = train(folder, "big.csv", "on", "ooc-cached", limit, extra)
        results["sample_memory"] = json.loads((folder / "sample-memory.result.json").read_text())
        results["sample_ooc"] = train(folder, "sample.csv", "on", "sample-ooc", None, extra)
        results["sample_memory_after"] = train(folder, "sample.csv", "off", "sample-memory-2",
                                               None, extra)  # fmt: skip
        save()
    steps = {"prepare": lambda: prepare(folder, limit),
             "evaluate": lambda: evaluate(folder, model, "big.csv", limit),
             "cv": lambda: cross_validate(folder, limit, extra),
             "explain": lambda: explain(folder, model, limit)}  # fmt: skip
    for name, step in steps.items():
        if name in wanted:
            results[name] = step()
            save()
    with contextlib.suppress(OSError):
        (CGROUP / f"mlpcli-ooc-bench-{os.getpid()}").rmdir()


#: The steps of `run`, in order (`--only` picks some).
STEPS = ("convert", "train", "prepare", "evaluate", "cv", "explain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    g = sub.add_parser("generate")
    g.add_argument("folder", type=Path)
    g.add_argument("--rows", type=int, default=11_000_000)
    g.add_argument("--sample-rows", type=int, default=1_000_000)
    r = sub.add_parser("run")
    r.add_argument("folder", type=Path)
    r.add_argument("--limit-mib", type=int, default=512)
    r.add_argument("--json", type=Path)
    r.add_argument("--only", help=f"comma-separated steps of: {', '.join(STEPS)}")
    r.add_argument("--model", default="ooc-cached.npz", help="evaluate's and explain's, in DIR")
    t = sub.add_parser("_train")  # one run, its result into FOLDER/NAME.result.json
    for name in ("folder", "table", "mode", "name", "limit"):
        t.add_argument(name)
    c = sub.add_parser("clean")
    c.add_argument("folder", type=Path)
    args, extra = parser.parse_known_args()
    if args.what == "generate":
        generate(args.folder, args.rows, args.sample_rows)
    elif args.what == "run":
        only = None if args.only is None else set(args.only.split(","))
        run(args.folder, args.limit_mib, args.json, extra or DEFAULT_OPTIONS, only, args.model)
    elif args.what == "_train":
        folder = Path(args.folder)
        found = train(folder, args.table, args.mode, args.name, int(args.limit) or None, extra)
        (folder / f"{args.name}.result.json").write_text(json.dumps(found))
    else:
        shutil.rmtree(args.folder)


if __name__ == "__main__":
    main()
