"""Issue 16's input/output targets, side by side in fresh processes: CSV reading (`read_table`
as it reads by default, and through pyarrow, against the one pandas call of the start of the
issue), the table cache (second load against the first), the whole `train` command against the
scikit-learn script a user would write, and where `predict`'s time goes per row. Interleaved
A B A B; CPU seconds beside wall seconds, since the machine is shared. Processes run as in a
user's shell, with .pyc files (`USER_ENV`), and mlpcli is compiled once before timing.

    python bench/iobench.py /tmp/mlpcli-bench/train_1M.csv /tmp/mlpcli-bench/train_100k.csv

prints one JSON object (the figures `targets.py` turns into rows); `commands.run_all` calls
`measure` and puts them into `figures["io"]`.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from startup import USER_ENV  # a user's shell: .pyc files written and reused

HERE = Path(__file__).resolve().parent

#: One read in a fresh process: wall, CPU and peak memory, as JSON on stdout.
READ = """
import json, resource, sys, time
from mlpcli.data import cache, read, read_table
path, how, root = sys.argv[1:4]
t0, c0 = time.perf_counter(), time.process_time()
if how == "whole":  # one pandas call: the reader at the start of issue 16
    frame = read._parse_table(path, None, ".", None, False, None, text_columns=["sample"],
                              in_blocks=False).frame
elif how == "arrow":  # pyarrow's reader (data/arrow.py), off by default
    from mlpcli.data import arrow
    arrow.READ_CSV = True
    frame = read_table(path, text_columns=["sample"]).frame
else:
    cache.use(root if how == "cached" else None)
    frame = read_table(path, text_columns=["sample"]).frame
X = frame.iloc[:, 1:-1].to_numpy()
total = float(X.sum(dtype="float64"))  # every value touched, as training touches them
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "sum": total}))
"""

#: The scikit-learn script a user would write for the main case (issue 16).
SKLEARN = """
import sys, warnings
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
warnings.simplefilter("ignore", ConvergenceWarning)
frame = pd.read_csv(sys.argv[1])
X, y = frame.drop(columns=["sample", "label"]), frame["label"]
model = make_pipeline(StandardScaler(), MLPClassifier(
    hidden_layer_sizes=(256, 128), solver="adam", batch_size=256, max_iter=5, alpha=0.0,
    early_stopping=True, validation_fraction=0.1, n_iter_no_change=1000, tol=0.0,
    random_state=0))
model.fit(X, y)
"""

TRAIN_FLAGS = [
    *("--target", "label", "--id", "sample", "--hidden", "256,128", "--batch-size", "256"),
    *("--epochs", "5", "--patience", "off", "--seed", "0", "--valid-fraction", "0.1"),
    *("--preset", "classic"),  # the network, whatever the default preset becomes
]


#: Where `predict`'s CPU goes per row, in one process on the main-case model: the chunked
#: parse, the preprocessing, the network, and the prediction table with its CSV text.
PHASES = """
import json, sys, time
import numpy as np
from mlpcli import predicting, trained
from mlpcli.data import write
model = trained.load_trained(sys.argv[1])
cpu = {"parse": 0.0, "preprocess": 0.0, "forward": 0.0, "table": 0.0, "csv": 0.0}
n = 0
clock = time.process_time
with predicting.open_chunks(model, sys.argv[2], None, text_columns=["sample"],
                            checksum=False) as table:
    chunks = iter(table)
    while True:
        t0 = clock()
        chunk = next(chunks, None)
        cpu["parse"] += clock() - t0
        if chunk is None:
            break
        t0 = clock()
        X = model.transform(chunk)
        t1 = clock()
        with trained.one_blas_thread():
            for start, rows, block in trained._padded_blocks(X):
                model.net.forward(block, batch_size=trained.FORWARD_BLOCK)
        t2 = clock()
        frame = predicting.prediction_frame(model, chunk, ["sample"])
        t3 = clock()
        write.csv_text(frame)
        t4 = clock()
        cpu["preprocess"] += t1 - t0
        cpu["forward"] += t2 - t1
        cpu["table"] += (t3 - t2) - (t2 - t0)  # prediction_frame runs both again
        cpu["csv"] += t4 - t3
        n += len(chunk)
print(json.dumps({"rows": n, **{k: v / n * 1e6 for k, v in cpu.items()}}))
"""


def load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def compile_mlpcli() -> None:
    """The .pyc files an installed mlpcli has (pip compiles at install; editable installs do
    not), written once so that no timed process compiles."""
    import mlpcli

    package = str(Path(mlpcli.__file__).parent)
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], env=USER_ENV, check=False)


def timed(cmd: list[str]) -> dict[str, Any]:
    """Wall and CPU seconds (children's user + system) of one command."""
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=USER_ENV)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr[-800:]}")
    return {"wall": wall, "cpu": cpu, "stdout": proc.stdout}


#: Seconds a whole-command run waits for idle CPUs first (`timed_idle`).
IDLE_WAIT = 60.0


def timed_idle(cmd: list[str], attempts: int = 3) -> dict[str, Any]:
    """`timed` after waiting for idle CPUs, repeated (up to `attempts` runs) while other
    processes used over a quarter of the CPUs during it: one other job on 2 cores moves a
    whole-command ratio by 10-20%. `others` is that share in the run kept."""
    from idle import cpu_snapshot, others_share, wait_idle

    run: dict[str, Any] = {}
    for _ in range(attempts):
        wait_idle(IDLE_WAIT)
        before = cpu_snapshot()
        run = timed(cmd)
        run["others"] = others_share(before, cpu_snapshot(), run["cpu"])
        if run["others"] <= 0.25:
            break
    return run


def read_once(csv: Path, how: str, root: Path) -> dict[str, Any]:
    run = timed([sys.executable, "-c", READ, str(csv), how, str(root)])
    return json.loads(run["stdout"].strip().splitlines()[-1])


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def measure(big: Path, main: Path | None, rounds: int = 2) -> dict[str, Any]:
    figures: dict[str, Any] = {"load_before": load()}
    compile_mlpcli()
    root = Path(tempfile.mkdtemp(prefix="mlpcli-bench-cache-"))
    try:
        whole, blocks, arrow = [], [], []
        for r in range(rounds):
            trio = [("whole", whole), ("blocks", blocks), ("arrow", arrow)]
            for how, runs in trio if r % 2 == 0 else trio[::-1]:
                runs.append(read_once(big, how, root))
        first = read_once(big, "cached", root)  # parses and stores
        again = [read_once(big, "cached", root) for _ in range(rounds)]
        figures["read"] = {
            "file": big.name,
            "whole_wall": median(whole, "wall"),
            "whole_cpu": median(whole, "cpu"),
            "whole_peak": max(r["peak"] for r in whole),
            "blocks_wall": median(blocks, "wall"),
            "blocks_cpu": median(blocks, "cpu"),
            "blocks_peak": max(r["peak"] for r in blocks),
            "arrow_wall": median(arrow, "wall"),
            "arrow_cpu": median(arrow, "cpu"),
            "arrow_peak": max(r["peak"] for r in arrow),
            "same": len({r["sum"] for r in whole + blocks + arrow}) == 1,
        }
        figures["cache"] = {
            "file": big.name,
            "first_wall": first["wall"],
            "first_cpu": first["cpu"],
            "second_wall": median(again, "wall"),
            "second_cpu": median(again, "cpu"),
            "same": all(r["sum"] == first["sum"] for r in again),
        }
        if main is not None:
            figures["whole_train"] = whole_train(main, rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures["load_after"] = load()
    return figures


def whole_train(csv: Path, rounds: int) -> dict[str, Any] | None:
    """`mlpcli train` (no cache: a first run) against the scikit-learn script, interleaved,
    at least 3 rounds (a median of 2 is their mean), each run on idle CPUs (`timed_idle`)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return None
    mlpcli = str(Path(sys.executable).parent / "mlpcli")
    out = Path(tempfile.mkdtemp(prefix="mlpcli-bench-train-"))
    ours, theirs = [], []
    try:
        for r in range(max(rounds, 3)):
            cmds = [
                (ours, [mlpcli, "train", str(csv), "--out", str(out / "m.npz"), *TRAIN_FLAGS,
                        "--threads", "2", "--quiet", "--no-cache"]),
                (theirs, [sys.executable, "-c", SKLEARN, str(csv)]),
            ]  # fmt: skip
            for runs, cmd in cmds if r % 2 == 0 else cmds[::-1]:
                runs.append(timed_idle(cmd))
        phases = timed([sys.executable, "-c", PHASES, str(out / "m.npz"), str(csv)])
        stages = timed([sys.executable, str(HERE / "phases.py"), str(csv), str(out / "p.npz"),
                        *TRAIN_FLAGS, "--threads", "2"])  # fmt: skip
    finally:
        shutil.rmtree(out, ignore_errors=True)
    ratios = [a["wall"] / b["wall"] for a, b in zip(ours, theirs, strict=True)]
    return {
        "file": csv.name,
        "mlpcli_wall": median(ours, "wall"),
        "mlpcli_cpu": median(ours, "cpu"),
        "sklearn_wall": median(theirs, "wall"),
        "sklearn_cpu": median(theirs, "cpu"),
        "ratio": statistics.median(ratios),
        "cpu_ratio": median(ours, "cpu") / median(theirs, "cpu"),
        "others_max": max(run["others"] for run in ours + theirs),
        "predict_us_per_row": json.loads(phases["stdout"].strip().splitlines()[-1]),
        "train_stages": _stages(json.loads(stages["stdout"].strip().splitlines()[-1])),
    }


def _stages(report: dict[str, Any]) -> dict[str, float]:
    """Seconds of `train` by stage (bench/phases.py), the small ones together."""
    found = {"imports": report["import_seconds"]}
    for name, stage in report["stages"].items():
        found[name] = stage["exclusive"]
    return {"total": report["total_seconds"], **found}


if __name__ == "__main__":
    big_csv = Path(sys.argv[1])
    main_csv = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    print(json.dumps(measure(big_csv, main_csv, int(os.environ.get("ROUNDS", "2")))))
