"""Where parallel work runs: one executor, on local joblib processes or a dask.distributed
cluster, used by `cv`, `tune`, `explain` and `train --ensemble-groups`.

Callers hand it a top-level function and argument tuples; results come back in call order
whatever finishes first. Results never depend on the backend or the number of workers because
every task carries its own seed: `seed_streams(seed, n)` gives n independent generators' seeds
(`SeedSequence(seed).spawn(n)`), and work split into chunks keeps each item's own stream.

How a task's data reach a dask worker: where the workers see the same files as this process
(a shared filesystem: `Executor.by_path` checks each file's size and modification time on every
worker), a task carries a `FileRef`: a top-level function and its small arguments (the file's
absolute path, its SHA-256 and the reading options), and the worker builds the data itself
(`resolve`), reading through the same table cache (a memory map) when one is in use, and keeps
the last few builds for its next tasks. Otherwise (`--ship-data`, stdin, or a worker that does
not see a file) the data are built here and scattered to the workers once per run.

What every task uses besides: `stream` (a generator per purpose, from `--seed`), `task_threads`
(a fixed BLAS thread count), and `collect_log`/`LogReplay`, which hold back a task's log
messages and show each distinct one once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import itertools
import logging
import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpcli.errors import DataError, UsageError, install_hint

if TYPE_CHECKING:
    from mlpcli.config import Settings

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

    def unseen(self, files: dict[str, tuple[int, int]]) -> list[str]:
        """The workers that do not see every file (absolute path -> size, mtime in ns) as
        this process does."""
        sees = self.client.run(_sees_files, files, on_error="return")
        return sorted(w for w, ok in sees.items() if ok is not True)

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


@dataclass(frozen=True)
class Placement:
    """Where one command's tasks run: --backend, --scheduler, --n-jobs, --ship-data."""

    backend: str = "local"
    scheduler: str | None = None
    n_jobs: int = 1
    ship_data: bool = False

    def executor(self) -> Executor:
        return Executor(self.backend, self.scheduler, self.n_jobs, self.ship_data)


class Executor:
    """Runs a top-level function over argument tuples with joblib, in parallel on a backend.

    Use it as a context manager: entering connects to a cluster (if any), leaving closes it.
    """

    def __init__(
        self,
        backend: str = "local",
        scheduler: str | None = None,
        n_jobs: int = 1,
        ship_data: bool = False,
    ):
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or (n_jobs < 1 and n_jobs != -1):
            raise UsageError(f"--n-jobs must be a whole number of at least 1, or -1; got {n_jobs}.")
        kind = BACKENDS.get(backend)
        if kind is None:
            raise UsageError(f"--backend got '{backend}'; choose one of: {', '.join(BACKENDS)}.")
        self.backend = kind(scheduler, n_jobs)
        self.name = backend
        self.ship_data = ship_data

    def __enter__(self) -> Executor:
        self.backend.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.backend.close()

    @property
    def n_workers(self) -> int:
        """How many tasks can run at once (once entered, for a cluster)."""
        return self.backend.n_workers()

    def by_path(self, *paths: str | None) -> bool:
        """Whether tasks may carry `FileRef`s to these files (None: no file) rather than the
        data: on dask, unless --ship-data, stdin, or a worker that does not see a file the
        way this process does. Says which way the data go."""
        given = [p for p in paths if p is not None]
        if isinstance(self.backend, LocalBackend):
            return False
        if self.ship_data:
            LOG.info("Dask: the data are sent to the workers through the scheduler (--ship-data).")
            return False
        if "-" in given:
            LOG.info("Dask: stdin is sent to the workers through the scheduler (it has no path).")
            return False
        files = {}
        for path in given:
            stat = os.stat(path)
            files[os.path.abspath(path)] = (stat.st_size, stat.st_mtime_ns)
        unseen = self.backend.unseen(files)
        if unseen:
            LOG.warning(
                f"Dask worker(s) {', '.join(unseen)} do not see {', '.join(given)} as this "
                "machine does (no shared filesystem?): the data go through the scheduler "
                "instead (--ship-data skips this check)."
            )
            return False
        LOG.info(
            f"Dask: the workers read {', '.join(given)} themselves (shared filesystem); "
            "--ship-data sends the data instead."
        )
        return True

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


def _sees_files(files: dict[str, tuple[int, int]]) -> bool:
    """On a worker: every file is there with the same size and modification time."""
    for path, (size, mtime_ns) in files.items():
        try:
            stat = os.stat(path)
        except OSError:
            return False
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns):
            return False
    return True


# --------------------------------------------------------------------------- data by path
@dataclass(frozen=True)
class FileRef:
    """Data a worker builds from files it shares with this process: `build(*args)`, a
    top-level function whose arguments are small (absolute paths, SHA-256s, options), run
    with the table cache at `cache` (a folder, or None for none) as this process reads it."""

    build: Callable[..., Any]
    args: tuple[Any, ...]
    cache: str | None = None
    #: Keep the build for the worker's next tasks; False for one that holds files on disk
    #: (an out-of-core fold's row files, removed when the task drops it).
    keep: bool = True


#: Builds a worker process keeps for its next tasks (the folds of one table, say).
KEPT_BUILDS = 4
_built: OrderedDict[bytes, Any] = OrderedDict()
_lock = threading.RLock()  # a build may resolve the table it encodes


def file_ref(build: Callable[..., Any], *args: Any) -> FileRef:
    """A `FileRef` that reads through this process's table cache, if one is in use."""
    from mlpcli.data import cache

    root = cache.active_root()
    return FileRef(build, args, None if root is None else os.path.abspath(root))


def resolve(value: Any) -> Any:
    """A task's data: `value` itself, or built from a `FileRef` (kept for later tasks). The
    build's log messages are dropped: this process logged the same ones when it read the data."""
    if not isinstance(value, FileRef):
        return value
    if not value.keep:
        with _table_cache(value.cache), _silenced():
            return value.build(*value.args)
    key = pickle.dumps((value.build.__module__, value.build.__qualname__, value.args, value.cache))
    with _lock:
        if key in _built:
            _built.move_to_end(key)
            return _built[key]
        with _table_cache(value.cache), _silenced():
            built = value.build(*value.args)
        _built[key] = built
        while len(_built) > KEPT_BUILDS:
            _built.popitem(last=False)
        return built


def check_same_file(path: str, expected: str, found: str) -> None:
    """A worker read a different file at `path` than this process did: refuse."""
    if found != expected:
        raise DataError(
            f"{path}: a dask worker reads a file whose SHA-256 ({found[:12]}...) differs from "
            f"the one this machine read ({expected[:12]}...); make the workers see the same "
            "file, or give --ship-data."
        )


@contextlib.contextmanager
def _table_cache(root: str | None) -> Iterator[None]:
    from mlpcli.data import cache

    previous = cache.active_root()
    cache.use(root)
    try:
        yield
    finally:
        cache.use(previous)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Drop this thread's records: a `_Collector` whose records are never replayed, first in
    line so that a caller's own collector does not keep them."""
    drop = _Collector()
    LOG.filters.insert(0, drop)
    try:
        yield
    finally:
        LOG.removeFilter(drop)


# --------------------------------------------------------------------------- what a task carries
def stream(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for one purpose (`key`) derived from `--seed`."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def task_threads(settings: Settings) -> int:
    """BLAS threads of one task: `--threads`, else 1, whatever the number of parallel jobs, so
    results do not depend on `--n-jobs` and parallel tasks do not oversubscribe the cores."""
    return settings.train.threads or 1


def side_files(settings: Settings) -> list[str | None]:
    """The files besides DATA that preparing the data reads."""
    d = settings.data
    return [d.valid_file, d.features_file, d.labels]


def worker_settings(settings: Settings) -> Settings:
    """The settings with absolute file paths, for a worker whose working folder differs."""
    d = settings.data
    absolute = {
        name: os.path.abspath(value)
        for name in ("valid_file", "features_file", "labels")
        if (value := getattr(d, name)) is not None
    }
    return dataclasses.replace(settings, data=dataclasses.replace(d, **absolute))


# --------------------------------------------------------------------------- a task's log
class _Collector(logging.Filter):
    """Takes this thread's `mlpcli` records out of the log and keeps (level, message)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.records: list[tuple[int, str]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        self.records.append((record.levelno, record.getMessage()))
        return False


@contextlib.contextmanager
def collect_log() -> Iterator[list[tuple[int, str]]]:
    """Hold back the messages of per-fold work, so each is shown once, not once per fold or
    from every worker process (which has no handler and would print raw lines)."""
    collector = _Collector()
    LOG.addFilter(collector)
    try:
        yield collector.records
    finally:
        LOG.removeFilter(collector)


class LogReplay:
    """Re-emits collected messages, each distinct one once."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, str]] = set()

    def __call__(self, records: Iterable[tuple[int, str]]) -> None:
        for record in records:
            if record not in self.seen:
                self.seen.add(record)
                LOG.log(*record)
