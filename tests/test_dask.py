"""A real dask cluster: a `dask scheduler` and a `dask worker` started as subprocesses on
127.0.0.1, a small `tune` and `cv` sent to them, the results equal to the local run."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import assert_same_model

#: End to end (a real local Dask scheduler and workers): deselected by `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

distributed = pytest.importorskip(
    "distributed", reason='the dask extra is not installed (pip install ".[dask]")'
)

STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # A session of its own, so stopping it also stops the worker processes it spawns.
        return subprocess.Popen(
            [sys.executable, "-m", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the dask scheduler exited:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"the dask scheduler did not listen within {STARTUP_SECONDS} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a scheduler with two single-threaded workers; torn down afterwards."""
    folder = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        log = folder / "scheduler.log"
        scheduler = ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port)]
        processes.append(start([*scheduler, "--no-dashboard"], log))
        wait_for(port, processes[0], log)
        worker = ["distributed.cli.dask_worker", address, "--host", "127.0.0.1"]
        worker += ["--nworkers", "2", "--nthreads", "1", "--no-dashboard", "--memory-limit", "0"]
        processes.append(start(worker, folder / "worker.log"))
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=STARTUP_SECONDS)
        yield address
    finally:
        for process in reversed(processes):
            stop(process)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(8)
    X = rng.normal(size=(60, 3))
    frame = pd.DataFrame(X, columns=["g1", "g2", "g3"])
    frame.insert(0, "sample", [f"S{i:02d}" for i in range(60)])
    frame["status"] = np.where(X[:, 0] + X[:, 2] > 0, "case", "control")
    path = tmp_path_factory.mktemp("dask_data") / "cohort.csv"
    frame.to_csv(path, index=False)
    return path


def mlpcli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mlpcli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done


def scheduler_counts(address: str) -> dict[str, dict[str, int]]:
    """Transitions per task-name prefix, as the scheduler counts them."""

    def counts(dask_scheduler: Any) -> dict[str, dict[str, int]]:
        return {k: dict(p.state_counts) for k, p in dask_scheduler.task_prefixes.items()}

    with distributed.Client(address, timeout="30s") as client:
        return client.run_on_scheduler(counts)  # type: ignore[no-any-return]


def ranking(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The ranking without run times, which differ from run to run."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in doc["ranking"]]


Counts = dict[str, dict[str, int]]


def delta(before: Counts, after: Counts, name: str) -> int:
    """Keys in memory between two counts, of the task prefixes whose name holds `name`
    (`_indexed`: tasks run; `EncodedFold`, `PreparedData`, `tuple`: data scattered)."""
    return sum(
        v.get("memory", 0) - before.get(k, {}).get("memory", 0)
        for k, v in after.items()
        if name in k
    )


def scattered_folds(before: Counts, after: Counts) -> int:
    """Encoded folds the client scattered to the workers between two counts."""
    return delta(before, after, "EncodedFold")


def test_tune_on_the_cluster_equals_the_local_run(
    cluster: str, table: Path, tmp_path: Path
) -> None:
    space = tmp_path / "space.toml"
    space.write_text('lr = [1e-5, 0.05]\nhidden = ["", "4"]\n')
    args = ["tune", table, "--target", "status", "--id", "sample", "--space", space, "--cv", 3]
    args += ["--epochs", 8, "--batch-size", 16, "--json"]
    on_cluster = ["--backend", "dask", "--scheduler", cluster]
    before = scheduler_counts(cluster)
    by_path = mlpcli(*args, *on_cluster, cwd=tmp_path)
    between = scheduler_counts(cluster)
    shipped = mlpcli(*args, *on_cluster, "--ship-data", cwd=tmp_path)
    after = scheduler_counts(cluster)
    local = mlpcli(*args, cwd=tmp_path)
    assert f"Dask cluster {cluster}: 2 worker(s), 2 thread(s)." in by_path.stderr
    assert f"Dask: the workers read {table} themselves (shared filesystem)" in by_path.stderr
    assert "through the scheduler (--ship-data)" in shipped.stderr
    expected = ranking(json.loads(local.stdout))
    assert ranking(json.loads(by_path.stdout)) == ranking(json.loads(shipped.stdout)) == expected
    # The work ran on the cluster; by path nothing was scattered (the workers encoded the
    # folds from the file), with --ship-data the three folds once each, not once for each
    # of the 4 x 3 tasks.
    ran = {k: v for k, v in between.items() if "_indexed" in k}
    assert sum(v.get("memory", 0) for v in ran.values()) > 0
    assert scattered_folds(before, between) == 0
    assert scattered_folds(between, after) == 3


def test_cv_on_the_cluster_equals_the_local_run(cluster: str, table: Path, tmp_path: Path) -> None:
    """By path: the workers read the table (through the table cache) and encode their folds;
    nothing is scattered, and the outputs are byte for byte those of a local run."""
    args = ["cv", table, "--target", "status", "--id", "sample", "--folds", 3, "--repeats", 2]
    args += ["--hidden", "4", "--epochs", 8, "--batch-size", 16, "--cache", tmp_path / "cache"]
    before = scheduler_counts(cluster)
    mlpcli(*args, "--backend", "dask", "--scheduler", cluster, "--out", "remote.json",
           "--oof-out", "remote.csv", cwd=tmp_path)  # fmt: skip
    assert scattered_folds(before, scheduler_counts(cluster)) == 0
    mlpcli(*args, "--out", "local.json", "--oof-out", "local.csv", cwd=tmp_path)
    remote, local = (json.loads((tmp_path / f"{w}.json").read_text()) for w in ("remote", "local"))
    assert remote["metrics"] == local["metrics"]
    assert [f["metrics"] for f in remote["per_fold"]] == [f["metrics"] for f in local["per_fold"]]
    assert (tmp_path / "remote.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_cv_out_of_core_on_the_cluster_equals_the_local_run(
    cluster: str, table: Path, tmp_path: Path
) -> None:
    """Out of core every task builds its fold from the shared file and cache itself: nothing
    is scattered, the metrics equal a local out-of-core run, and --ship-data is refused."""
    args = ["cv", table, "--target", "status", "--id", "sample", "--folds", 2, "--hidden", "4"]
    args += ["--epochs", 4, "--batch-size", 16, "--cache", tmp_path / "cache", "--out-of-core"]
    args += ["on"]
    on_cluster = ["--backend", "dask", "--scheduler", cluster]
    before = scheduler_counts(cluster)
    mlpcli(*args, *on_cluster, "--out", "remote.json", cwd=tmp_path)
    after = scheduler_counts(cluster)
    assert scattered_folds(before, after) == 0 and delta(before, after, "_indexed") == 2
    mlpcli(*args, "--out", "local.json", cwd=tmp_path)
    remote, local = (json.loads((tmp_path / f"{w}.json").read_text()) for w in ("remote", "local"))
    assert [f["metrics"] for f in remote["per_fold"]] == [f["metrics"] for f in local["per_fold"]]
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    shipped = subprocess.run(
        [sys.executable, "-m", "mlpcli", *map(str, [*args, *on_cluster, "--ship-data"])],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180,
    )  # fmt: skip
    assert shipped.returncode == 2
    assert "--out-of-core on with --backend dask needs workers that see DATA" in shipped.stderr


def test_ensemble_groups_on_the_cluster_equal_the_local_run(
    cluster: str, table: Path, tmp_path: Path
) -> None:
    """`train --ensemble 4 --ensemble-groups 2`: the two groups run as tasks on the workers
    (which read the table by path, or get it sent with --ship-data) and the stacked model file
    equals the local run's byte for byte, but for timings and the command line."""
    args = ["train", table, "--target", "status", "--id", "sample", "--preset", "realmlp_td"]
    args += ["--ensemble", 4, "--ensemble-groups", 2, "--hidden", 8, "--epochs", 4]
    on_cluster = ["--backend", "dask", "--scheduler", cluster]
    before = scheduler_counts(cluster)
    by_path = mlpcli(*args, *on_cluster, "--out", "by_path.npz", cwd=tmp_path)
    between = scheduler_counts(cluster)
    mlpcli(*args, *on_cluster, "--ship-data", "--out", "shipped.npz", cwd=tmp_path)
    after = scheduler_counts(cluster)
    mlpcli(*args, "--out", "local.npz", "--quiet", cwd=tmp_path)
    assert "Ensemble group 2/2 (members 3-4)" in by_path.stderr
    assert_same_model(tmp_path / "by_path.npz", tmp_path / "local.npz")
    assert_same_model(tmp_path / "shipped.npz", tmp_path / "local.npz")
    assert delta(before, between, "_indexed") == 2  # one task per group
    assert delta(before, between, "PreparedData") == 0  # by path: nothing scattered
    assert delta(between, after, "PreparedData") == 1  # --ship-data: the data once


def test_explain_on_the_cluster_equals_the_local_run(
    cluster: str, table: Path, tmp_path: Path
) -> None:
    """Permutation chunks on the workers, which read the model and table by path (nothing
    scattered) or get them sent with --ship-data: the same bytes as local and serial runs."""
    mlpcli("train", table, "--target", "status", "--id", "sample", "--hidden", "4",
           "--epochs", 20, "--out", "model.npz", "--quiet", cwd=tmp_path)  # fmt: skip
    args = ["explain", "model.npz", table, "--repeats", 5, "--seed", 3]
    on_cluster = ["--backend", "dask", "--scheduler", cluster]
    before = scheduler_counts(cluster)
    by_path = mlpcli(*args, *on_cluster, "--out", "remote.csv", cwd=tmp_path)
    between = scheduler_counts(cluster)
    mlpcli(*args, *on_cluster, "--ship-data", "--out", "shipped.csv", cwd=tmp_path)
    after = scheduler_counts(cluster)
    mlpcli(*args, "--n-jobs", 2, "--out", "local.csv", "--quiet", cwd=tmp_path)
    mlpcli(*args, "--out", "serial.csv", "--quiet", cwd=tmp_path)
    assert f"Dask: the workers read model.npz, {table} themselves" in by_path.stderr
    remote = (tmp_path / "remote.csv").read_bytes()
    assert remote == (tmp_path / "shipped.csv").read_bytes()
    assert remote == (tmp_path / "local.csv").read_bytes() == (tmp_path / "serial.csv").read_bytes()

    # The features' chunks ran on the cluster's two worker threads; the network, X and the
    # scorer went through the scheduler (one scattered tuple) only with --ship-data.
    assert delta(before, between, "_indexed") == delta(between, after, "_indexed") == 2
    assert delta(before, between, "tuple") == 0
    assert delta(between, after, "tuple") == 1


def test_an_unreachable_scheduler_is_a_usage_error(table: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    done = subprocess.run(
        [sys.executable, "-m", "mlpcli", "cv", str(table), "--target", "status", "--backend",
         "dask", "--scheduler", f"tcp://127.0.0.1:{port}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"Error: --scheduler tcp://127.0.0.1:{port}: cannot connect" in done.stderr


def test_n_jobs_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from mlpcli import parallel

    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        parallel.Executor("dask", "tcp://127.0.0.1:1", n_jobs=4)  # no connection until entered
    assert [r.getMessage() for r in caplog.records] == [
        "--n-jobs 4 is ignored with --backend dask: every worker thread of the cluster runs tasks."
    ]
