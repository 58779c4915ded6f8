"""The executor behind cv, tune and explain: option checks, call order, chunks and seeds.
Runs on a real cluster are in test_dask.py."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from mlpcli import parallel
from mlpcli.errors import DataError, UsageError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_jobs": 0}, r"--n-jobs must be .* at least 1, or -1; got 0"),
        ({"n_jobs": -2}, r"--n-jobs must be"),
        ({"backend": "spark"}, r"--backend got 'spark'; choose one of: local, dask"),
        ({"scheduler": "tcp://x:1"}, r"--scheduler applies to --backend dask only"),
        ({"backend": "dask"}, r"--backend dask needs --scheduler ADDRESS"),
    ],
    ids=["zero-jobs", "negative-jobs", "unknown-backend", "scheduler-without-dask", "no-address"],
)
def test_executor_option_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parallel.Executor(**kwargs)


def test_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = parallel.importlib.import_module

    def no_distributed(name: str, *args: object) -> object:
        if name == "distributed":
            raise ImportError("No module named 'distributed'")
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(parallel.importlib, "import_module", no_distributed)
    with pytest.raises(UsageError, match=r'pip install "\.\[dask\]" in the mlpcli checkout'):
        parallel.Executor("dask", "tcp://127.0.0.1:1")


def test_executor_keeps_call_order_and_reports_each() -> None:
    seen: list[int] = []
    out = parallel.Executor(n_jobs=1).map(
        pow, [(2, 3), (3, 2), (5, 0)], [], lambda i, r: seen.append(i)
    )
    assert out == [8, 9, 1] and sorted(seen) == [0, 1, 2]


@pytest.mark.parametrize(("n_items", "n_chunks"), [(10, 3), (3, 8), (1, 1), (7, 7)])
def test_chunks_cover_every_item_once_in_order(n_items: int, n_chunks: int) -> None:
    bounds = parallel.chunk_bounds(n_items, n_chunks)
    assert len(bounds) == min(n_items, n_chunks)
    covered = [i for a, b in bounds for i in range(a, b)]
    assert covered == list(range(n_items))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_seed_streams_are_spawned_from_the_seed() -> None:
    streams = parallel.seed_streams(7, 3)
    again = np.random.SeedSequence(7).spawn(3)
    draws = [np.random.default_rng(s).integers(1 << 30) for s in streams]
    assert draws == [np.random.default_rng(s).integers(1 << 30) for s in again]
    assert len(set(draws)) == 3


def test_local_workers_follow_n_jobs() -> None:
    assert parallel.Executor(n_jobs=3).n_workers == 3
    assert parallel.Executor(n_jobs=-1).n_workers >= 1


@pytest.mark.parametrize(
    ("n_jobs", "n_tasks", "workers"),
    [
        pytest.param(8, 2, 2, marks=pytest.mark.slow),  # starts worker processes
        pytest.param(2, 5, 2, marks=pytest.mark.slow),
        (-1, 1, 1),
    ],
)
def test_local_executor_never_starts_more_workers_than_tasks(
    monkeypatch: pytest.MonkeyPatch, n_jobs: int, n_tasks: int, workers: int
) -> None:
    import joblib

    asked: list[object] = []
    real = joblib.parallel_config

    def spy(*args: object, **kwargs: object) -> object:
        asked.append(kwargs.get("n_jobs"))
        return real(*args, **kwargs)

    monkeypatch.setattr(joblib, "parallel_config", spy)
    with parallel.Executor("local", None, n_jobs) as executor:
        assert executor.map(abs, [(-i,) for i in range(n_tasks)], []) == list(range(n_tasks))
    assert asked == [workers]


BUILDS: list[int] = []


def _build(x: int) -> list[int]:
    BUILDS.append(x)
    logging.getLogger("mlpcli").warning("reading the file")
    return [x, x]


def test_resolve_builds_a_file_ref_once_per_worker_and_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    BUILDS.clear()
    ref = parallel.FileRef(_build, (5,))
    with caplog.at_level(logging.INFO, logger="mlpcli"):
        first, again = parallel.resolve(ref), parallel.resolve(parallel.FileRef(_build, (5,)))
    assert first == [5, 5] and again is first and BUILDS == [5]
    # This process already said what reading the file says: a worker's build stays quiet.
    assert caplog.records == []
    assert parallel.resolve([1, 2]) == [1, 2]  # shipped data are used as they are
    for i in range(parallel.KEPT_BUILDS + 1):
        parallel.resolve(parallel.FileRef(_build, (100 + i,)))
    parallel.resolve(ref)
    assert BUILDS.count(5) == 2  # pushed out by newer builds, then built again


def test_a_worker_sees_a_file_only_with_the_same_size_and_time(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    stat = path.stat()
    assert parallel._sees_files({str(path): (stat.st_size, stat.st_mtime_ns)})
    assert not parallel._sees_files({str(path): (stat.st_size + 1, stat.st_mtime_ns)})
    assert not parallel._sees_files({str(tmp_path / "gone.csv"): (1, 1)})
    with pytest.raises(DataError, match=r"^t\.csv: a dask worker reads a file whose SHA-256"):
        parallel.check_same_file("t.csv", "a" * 64, "b" * 64)


class _FakeCluster:
    def __init__(self, unseen: list[str]) -> None:
        self.asked: list[dict[str, tuple[int, int]]] = []
        self._unseen = unseen

    def unseen(self, files: dict[str, tuple[int, int]]) -> list[str]:
        self.asked.append(files)
        return self._unseen


@pytest.mark.parametrize(
    ("unseen", "ship", "path", "expected", "message"),
    [
        ([], False, "t.csv", True, "Dask: the workers read t.csv themselves (shared filesystem)"),
        (["tcp://w:1"], False, "t.csv", False, "Dask worker(s) tcp://w:1 do not see t.csv"),
        ([], True, "t.csv", False, "through the scheduler (--ship-data)"),
        ([], False, "-", False, "stdin is sent to the workers through the scheduler"),
    ],
    ids=["shared", "not-shared", "ship-data", "stdin"],
)
def test_by_path_says_which_way_the_data_go(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    unseen: list[str],
    ship: bool,
    path: str,
    expected: bool,
    message: str,
) -> None:
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    (tmp_path / "t.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    executor = parallel.Executor("dask", "tcp://127.0.0.1:1", ship_data=ship)
    cluster = _FakeCluster(unseen)
    executor.backend = cluster  # type: ignore[assignment]
    with caplog.at_level(logging.INFO, logger="mlpcli"):
        assert executor.by_path(path, None) is expected
    assert message in caplog.text
    if cluster.asked:  # the workers are asked about the absolute path
        assert list(cluster.asked[0]) == [os.path.abspath("t.csv")]
    assert parallel.Executor(n_jobs=2).by_path("t.csv") is False  # local: data are given
