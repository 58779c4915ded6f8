"""The executor behind cv, tune and explain: option checks, call order, chunks and seeds.
Runs on a real cluster are in test_dask.py."""

from __future__ import annotations

import numpy as np
import pytest

from mlpcli import parallel
from mlpcli.errors import UsageError


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


@pytest.mark.parametrize(("n_jobs", "n_tasks", "workers"), [(8, 2, 2), (2, 5, 2), (-1, 1, 1)])
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
