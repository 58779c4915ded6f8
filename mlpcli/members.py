"""Ensemble members trained as separate tasks: `train --ensemble K --ensemble-groups G`.

With G = 1 (the default) the K members of `--preset realmlp_td` train as one batched network in
one process (`nn/batched.py`), so there is nothing to spread. With G > 1 they split into G
groups of nearly equal size (`parallel.chunk_bounds`): group g is a batched network of its own
members, trained as one task of the executor (local processes with `--n-jobs`, or dask workers
with `--backend dask`, which read the table by path where they share the filesystem), and the
groups' arrays are stacked along the member axis into one K-member network: the model file has
the layout of a G = 1 model, and `predict`, `evaluate`, `explain` read it as one.

The same options give byte-identical networks whatever the backend or `--n-jobs`: group g draws
from SeedSequence(seed, spawn_key=(ENSEMBLE_STREAM, g)) and runs with `--threads` (else 1) BLAS
threads. What differs from G = 1 (another ensemble of the same recipe, as another seed gives):
- each group draws its own initialisation, dropout masks and batch order;
- each group keeps its own best epoch (its members' mean validation score), where G = 1 keeps
  the epoch at which all K members' mean scores best;
- every group's data-dependent initialisation looks at the same sample of training rows (at
  most `init_rows`, drawn once from spawn_key (ENSEMBLE_STREAM,)), so the PLE bins agree, and
  the `--bag` folds are drawn once for all K members from that stream too;
- the model file's `training.history`, `epochs_run` and `best_epoch` are group 1's and its
  `best_value` is null; `training.groups` lists every group's members, epochs, best epoch,
  best value, stop reason and history.
Not with `--ensemble-kind batch` (its members share one weight matrix), `--checkpoint`,
`--resume` or `--out-of-core`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from mlpcli import fitting, parallel, prepare, presets
from mlpcli import task as tasks
from mlpcli.config import Settings
from mlpcli.errors import UsageError
from mlpcli.nn.network import MLP
from mlpcli.nn.recipe import RecipeNet
from mlpcli.training import FitResult

LOG = logging.getLogger("mlpcli")

#: First spawn-key element of the groups' streams (crossval's are 0, 1 and 2).
ENSEMBLE_STREAM = 3


@dataclass
class GroupResult:
    """What a group's task sends back: its members' arrays and its training record."""

    group: int
    members: tuple[int, int]
    arrays: dict[str, np.ndarray]
    fit: FitResult
    messages: list[tuple[int, str]]

    def record(self) -> dict[str, Any]:
        """The group as the model file's `training.groups` lists it (members 1-based)."""
        return {
            "members": [self.members[0] + 1, self.members[1]],
            "epochs_run": self.fit.epochs_run,
            "best_epoch": self.fit.best_epoch,
            "best_value": self.fit.best_value,
            "stop_reason": self.fit.stop_reason,
            "seconds": round(self.fit.seconds, 3),
            "history": [r.to_dict() for r in self.fit.history],
        }


def check(
    settings: Settings, placement: parallel.Placement, *, out_of_core: bool, checkpoint: bool
) -> None:
    """Refuse what groups cannot do, and spreading a single network, before any reading."""
    m = settings.model
    if m.ensemble_groups == 1:
        if placement != parallel.Placement():
            raise UsageError(
                "train spreads only the groups of --ensemble K --ensemble-groups G over "
                "--n-jobs/--backend; one network trains in one process (README, 'Cluster')."
            )
        return
    if not presets.uses_recipe(settings) or m.ensemble < m.ensemble_groups:
        raise UsageError(
            f"--ensemble-groups {m.ensemble_groups} splits the members of --preset realmlp_td "
            f"--ensemble K into groups; give K of at least {m.ensemble_groups}."
        )
    if m.ensemble_kind == "batch":
        raise UsageError(
            "--ensemble-kind batch members share one weight matrix, so they train as one "
            "network; leave out --ensemble-groups or use --ensemble-kind packed."
        )
    if out_of_core or checkpoint:
        what = "--out-of-core" if out_of_core else "--checkpoint/--resume"
        raise UsageError(f"--ensemble-groups does not work with {what}; leave out one of the two.")


def fit_groups(
    path: str,
    settings: Settings,
    prepared: prepare.PreparedData,
    placement: parallel.Placement,
) -> tuple[MLP, FitResult, list[dict[str, Any]]]:
    """Train the groups as tasks, stack them; the result's history is group 1's. The network
    is a `RecipeNet`, typed as the `MLP` the trainer and the model file take (as
    `training.recipe_trainer` does)."""
    m = settings.model
    bounds = parallel.chunk_bounds(m.ensemble, m.ensemble_groups)
    replay = parallel.LogReplay()
    started = time.perf_counter()
    with placement.executor() as executor:
        data: Any = prepared
        if executor.by_path(path, *parallel.side_files(settings)):
            sha = next(iter(prepared.inputs.values()))
            where, s = os.path.abspath(path), parallel.worker_settings(settings)
            data = parallel.file_ref(_prepared_from_file, where, sha, s)

        def on_done(i: int, result: GroupResult) -> None:
            replay(result.messages)
            a, b = result.members
            LOG.info(
                f"Ensemble group {i + 1}/{len(bounds)} (members {a + 1}-{b}): "
                f"{result.fit.epochs_run} epoch(s), best epoch {result.fit.best_epoch}."
            )

        calls = [(settings, data, g, members) for g, members in enumerate(bounds)]
        scatter = [] if isinstance(data, parallel.FileRef) else [prepared]
        results: list[GroupResult] = executor.map(train_group, calls, scatter, on_done)
    net = stack(settings, prepared, results)
    # Group 1's history and best epoch stand for the run; no group's best value is the
    # ensemble's (its validation metrics are computed on the stacked network).
    seconds = time.perf_counter() - started
    fit = dataclasses.replace(results[0].fit, best_value=None, seconds=seconds)
    return cast(MLP, net), fit, [r.record() for r in results]


def train_group(
    settings: Settings,
    data: prepare.PreparedData | parallel.FileRef,
    group: int,
    members: tuple[int, int],
) -> GroupResult:
    """One task: members [a, b) of the ensemble as one batched network of b - a members."""
    prepared: prepare.PreparedData = parallel.resolve(data)
    kind, (a, b) = prepared.task.task, members
    model = dataclasses.replace(settings.model, ensemble=b - a, bag=False, ensemble_groups=1)
    single = dataclasses.replace(settings, model=model)
    rng = parallel.stream(settings.train.seed, ENSEMBLE_STREAM, group)
    X_init, weights = shared_draws(settings, prepared)
    with parallel.collect_log() as messages, fitting.blas_threads(parallel.task_threads(settings)):
        options = fitting.fit_options(single, kind, prepared.X_val is not None)
        trainer = presets.make_recipe_trainer(
            single, X_init, prepared.Y, kind, prepared.preprocessor, options, rng,
            fitting.epoch_metric(kind)[1],
        )  # fmt: skip
        w = weights if weights is None or weights.ndim == 1 else weights[:, a:b]
        fit = trainer.fit(prepared.X, prepared.Y, prepared.X_val, prepared.Y_val, w)
    return GroupResult(group, members, trainer.net.state_arrays(), fit, messages)


def shared_draws(
    settings: Settings, prepared: prepare.PreparedData
) -> tuple[np.ndarray, np.ndarray | None]:
    """What every group draws alike: the rows the data-dependent initialisation looks at, and
    the sample weights (with `--bag`, one column per member of all K)."""
    rng = parallel.stream(settings.train.seed, ENSEMBLE_STREAM)
    n, rows = len(prepared.X), presets.recipe_config(settings, prepared.task.task).init_rows
    X_init = prepared.X
    if n > rows:
        X_init = prepared.X[np.sort(rng.choice(n, size=rows, replace=False))]
    weights = prepared.sample_weight
    if settings.model.bag:
        dtype = np.dtype(settings.model.dtype)
        weights = presets.bag_weights(rng, n, settings.model.ensemble, dtype, weights)
    return X_init, weights


def stack(
    settings: Settings, prepared: prepare.PreparedData, results: list[GroupResult]
) -> RecipeNet:
    """One K-member network from the groups' arrays: member arrays joined along the member
    axis, shared ones (PLE bins, the output range) equal in every group, kept once."""
    kind, pre = prepared.task.task, prepared.preprocessor
    net = RecipeNet(
        prepared.X.shape[1],
        prepared.Y.shape[1],
        tasks.get(kind).default_loss,
        presets.recipe_config(settings, kind),
        presets.numeric_columns(pre),
        settings.model.dtype,
        seed=0,
        categorical=presets.categorical_blocks(pre),
    )
    state: dict[str, np.ndarray] = {}
    for name, shape in net.state_shapes().items():
        parts = [r.arrays[name] for r in results]
        if parts[0].shape == shape:
            if any(not np.array_equal(p, parts[0]) for p in parts[1:]):
                raise RuntimeError(f"ensemble groups disagree on the shared array '{name}'")
            state[name] = parts[0]
        else:
            state[name] = np.concatenate(parts, axis=0)
    net.load_state_arrays(state)
    return net


def _prepared_from_file(path: str, sha256: str, settings: Settings) -> prepare.PreparedData:
    """On a worker: `train`'s prepared data (split, preprocessing) from the file itself."""
    prepared = prepare.prepare_data(path, settings, np.random.default_rng(settings.train.seed))
    parallel.check_same_file(path, sha256, next(iter(prepared.inputs.values())))
    return prepared
