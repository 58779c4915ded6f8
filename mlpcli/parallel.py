"""Where parallel work runs: one executor, on local joblib processes or a dask.distributed
cluster, used by `cv`, `tune` and `explain`.

Callers hand it a top-level function and argument tuples; results come back in call order
whatever finishes first. Results never depend on the backend or the number of workers because
every task carries its own seed: `seed_streams(seed, n)` gives n independent generators' seeds
(`SeedSequence(seed).spawn(n)`), and work split into chunks keeps each item's own stream.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlpcli.errors import UsageError, install_hint

LOG = logging.getLogger("mlpcli")


def seed_streams(seed: int | None, n: int) -> list[np.random.SeedSequence]:
    """n independent seeds from one `--seed`, one per task or item of work."""
    return np.random.SeedSequence(seed).spawn(n)


class LocalBackend:
    """joblib's loky processes on this machine (`--n-jobs`, -1 for every core)."""

    def __init__(self, scheduler: str | None, n_jobs: int) -> None:
        if scheduler:
            raise UsageError("--scheduler applies to --backend dask only.")
        self.n_jobs = n_jobs

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def n_workers(self) -> int:
        import joblib

        return int(joblib.cpu_count()) if self.n_jobs < 0 else self.n_jobs

    def config(self, scatter: list[Any], n_tasks: int) -> contextlib.AbstractContextManager[Any]:
        """Never more worker processes than tasks (each costs ~100 MB and a second to start),
        nor, with -1, than cores."""
        import joblib

        workers = max(1, min(self.n_workers(), n_tasks))
        config: contextlib.AbstractContextManager[Any] = joblib.parallel_config(
            backend="loky", n_jobs=workers
        )
        return config


class DaskBackend:
    """A dask.distributed cluster through joblib's dask backend. The fold data is scattered
    (broadcast) to the workers once per run; tasks refer to it instead of carrying it."""

    def __init__(self, scheduler: str | None, n_jobs: int) -> None:
        if not scheduler:
            raise UsageError(
                "--backend dask needs --scheduler ADDRESS, the address of a running dask "
                "scheduler (e.g. tcp://10.0.0.5:8786)."
            )
        try:
            self.distributed = importlib.import_module("distributed")
        except ImportError:
            raise UsageError(
                f"--backend dask needs the dask extra: {install_hint('dask')}."
            ) from None
        if n_jobs != 1:
            LOG.warning(
                f"--n-jobs {n_jobs} is ignored with --backend dask: every worker thread of the "
                "cluster runs tasks."
            )
        self.address = scheduler
        self.client: Any = None

    def open(self) -> None:
        """Connect and check the workers, before any data is read: fail fast."""
        try:
            # The connect timeout is dask's (distributed.comm.timeouts.connect, 30 s by default).
            self.client = self.distributed.Client(self.address, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UsageError(
                f"--scheduler {self.address}: cannot connect ({exc}); check the address and "
                "that the scheduler is running."
            ) from None
        try:
            self._check_workers(self.client)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def n_workers(self) -> int:
        return int(sum(self.client.nthreads().values())) if self.client is not None else 1

    def config(self, scatter: list[Any], n_tasks: int) -> contextlib.AbstractContextManager[Any]:
        import joblib

        config: contextlib.AbstractContextManager[Any] = joblib.parallel_config(
            backend="dask",
            n_jobs=-1,  # dask's backend uses every worker thread of the cluster
            client=self.client,
            scatter=scatter or None,
            wait_for_workers_timeout=60,
        )
        return config

    def _check_workers(self, client: Any) -> None:
        """Every worker must import the same mlpcli to unpickle the tasks and agree bitwise."""
        from importlib.metadata import version

        from mlpcli import DISTRIBUTION

        try:
            versions = client.run(version, DISTRIBUTION, on_error="return")
        except Exception as exc:  # the cluster's own failure, reported as such
            raise UsageError(f"--scheduler {self.address}: {exc}") from None
        missing = [w for w, v in versions.items() if isinstance(v, BaseException)]
        if missing:
            raise UsageError(
                f"--scheduler {self.address}: worker(s) {', '.join(missing)} cannot import "
                "mlpcli; install the same mlpcli version in the workers' environment."
            )
        here = version(DISTRIBUTION)
        others = sorted({v for v in versions.values() if v != here})
        if others:
            LOG.warning(
                f"Dask workers run mlpcli {', '.join(others)}, this process {here}: results "
                "may differ from a local run."
            )
        n_threads = sum(client.nthreads().values())
        LOG.info(f"Dask cluster {self.address}: {len(versions)} worker(s), {n_threads} thread(s).")
        if n_threads == 1:
            LOG.warning(
                "The dask cluster has one worker thread: joblib then runs the tasks in this "
                "process. Start more workers (dask worker ADDRESS --nworkers N --nthreads 1)."
            )


BACKENDS: dict[str, type[LocalBackend] | type[DaskBackend]] = {
    "local": LocalBackend,
    "dask": DaskBackend,
}


class Executor:
    """Runs a top-level function over argument tuples with joblib, in parallel on a backend.

    Use it as a context manager: entering connects to a cluster (if any), leaving closes it.
    """

    def __init__(self, backend: str = "local", scheduler: str | None = None, n_jobs: int = 1):
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or (n_jobs < 1 and n_jobs != -1):
            raise UsageError(f"--n-jobs must be a whole number of at least 1, or -1; got {n_jobs}.")
        kind = BACKENDS.get(backend)
        if kind is None:
            raise UsageError(f"--backend got '{backend}'; choose one of: {', '.join(BACKENDS)}.")
        self.backend = kind(scheduler, n_jobs)
        self.name = backend

    def __enter__(self) -> Executor:
        self.backend.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.backend.close()

    @property
    def n_workers(self) -> int:
        """How many tasks can run at once (once entered, for a cluster)."""
        return self.backend.n_workers()

    def map(
        self,
        func: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        scatter: list[Any],
        on_done: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """`func(*args)` for every tuple, results in call order; `on_done(i, result)` hears of
        each as it finishes. Objects in `scatter` are sent to dask workers once."""
        import joblib

        results: list[Any] = [None] * len(calls)
        with self.backend.config(scatter, len(calls)):
            parallel = joblib.Parallel(return_as="generator_unordered")
            jobs = (joblib.delayed(_indexed)(func, i, *args) for i, args in enumerate(calls))
            for i, result in parallel(jobs):
                results[i] = result
                if on_done is not None:
                    on_done(i, result)
        return results


def chunk_bounds(n_items: int, n_chunks: int) -> list[tuple[int, int]]:
    """[start, stop) of at most `n_chunks` contiguous, nearly equal chunks of `n_items`."""
    bounds = np.linspace(0, n_items, max(1, min(n_items, n_chunks)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def _indexed(func: Callable[..., Any], i: int, *args: Any) -> tuple[int, Any]:
    return i, func(*args)
