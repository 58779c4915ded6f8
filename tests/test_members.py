"""`train --ensemble K --ensemble-groups G`: groups trained as separate tasks, stacked into one
model whatever runs them; what groups refuse. The run on a real cluster is in test_dask.py."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_same_model
from typer.testing import CliRunner

from mlpcli import config, crossval, members, modelfile, parallel, pipeline, prepare
from mlpcli.cli import app
from mlpcli.data import cache
from mlpcli.nn.recipe import RecipeNet

GROUPS = {"preset": "realmlp_td", "hidden": "8", "epochs": 3, "batch_size": 16, "seed": 5}
TARGET = {"target": ["status"], "id": ["sample"], "drop": ["patient"]}


def settings_for(**extra: Any) -> config.Settings:
    return config.resolve({**TARGET, **GROUPS, **extra})


def test_the_stacked_network_is_its_groups_side_by_side(cohort_csv: Path) -> None:
    """Members a..b of the stacked model compute exactly what group [a, b) computed; shared
    arrays (PLE bins, the output range) agree; --bag weights come from one draw for all K."""
    settings = settings_for(ensemble=3, ensemble_groups=2, embedding="ple", bag=True)
    prepared = prepare.prepare_data(str(cohort_csv), settings, np.random.default_rng(5))
    bounds = parallel.chunk_bounds(3, 2)
    results = [members.train_group(settings, prepared, g, ab) for g, ab in enumerate(bounds)]
    net = members.stack(settings, prepared, results)
    assert net.config.n_members == 3 and net.config.bag
    outputs = net.member_outputs(prepared.X)
    for result, (a, b) in zip(results, bounds, strict=True):
        config_g = dataclasses.replace(net.config, n_members=b - a, bag=False)
        group = RecipeNet(net.n_inputs, net.n_outputs, net.loss_name, config_g, net.numeric, seed=0)
        group.load_state_arrays(result.arrays)
        assert outputs[a:b].tobytes() == group.member_outputs(prepared.X).tobytes()
    # A group's task is a pure function of its inputs: run again, the same arrays.
    again = members.train_group(settings, prepared, 1, bounds[1])
    assert all(again.arrays[k].tobytes() == v.tobytes() for k, v in results[1].arrays.items())


@pytest.mark.slow  # two local worker processes start (about 9 s under load)
def test_groups_give_the_same_model_file_whatever_n_jobs(cohort_csv: Path, tmp_path: Path) -> None:
    settings = settings_for(ensemble=4, ensemble_groups=2)
    paths = []
    for n_jobs in (1, 2):
        placement = parallel.Placement(n_jobs=n_jobs)
        outcome = pipeline.train(str(cohort_csv), settings, placement=placement)
        paths.append(tmp_path / f"jobs{n_jobs}.npz")
        pipeline.write_outputs(outcome, str(paths[-1]))
    assert_same_model(*paths)
    meta = modelfile.read_metadata(paths[0])
    groups = meta["training"]["groups"]
    assert [g["members"] for g in groups] == [[1, 2], [3, 4]]
    assert meta["training"]["history"] == groups[0]["history"]
    assert meta["training"]["best_value"] is None
    assert meta["recipe"]["config"]["n_members"] == 4


@pytest.mark.slow  # two local worker processes start (about 9 s under load)
def test_groups_in_workers_train_on_x_when_the_table_comes_from_the_cache(
    cohort_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table cache hit gives the table's matrix as the cache's copy-on-write memory map; X
    must not be written over it, since joblib sends a memory-mapped array to its worker
    processes by file name (they would map the file and train on the raw cells). Any CLI
    command leaves the cache on in the process, which is how the suite first met this."""
    monkeypatch.setattr(cache, "_root", tmp_path / "cache")  # cache.use(...), undone after
    table = tmp_path / "cohort.csv"
    shutil.copyfile(cohort_csv, table)
    os.utime(table, (time.time() - 10, time.time() - 10))  # past the racy window: cached
    settings = settings_for(ensemble=4, ensemble_groups=2)
    paths = []
    for i, n_jobs in enumerate((1, 1, 2)):  # the first run stores the entry, the others hit it
        placement = parallel.Placement(n_jobs=n_jobs)
        outcome = pipeline.train(str(table), settings, placement=placement)
        paths.append(tmp_path / f"run{i}-jobs{n_jobs}.npz")
        pipeline.write_outputs(outcome, str(paths[-1]))
    assert any((tmp_path / "cache").iterdir())
    assert_same_model(paths[0], paths[1])
    assert_same_model(paths[1], paths[2])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ensemble-groups", "2"], "splits the members of --preset realmlp_td"),
        (["--preset", "realmlp_td", "--ensemble", "2", "--ensemble-groups", "3"],
         "give K of at least 3"),
        (["--preset", "realmlp_td", "--ensemble", "4", "--ensemble-groups", "2",
          "--ensemble-kind", "batch"], "share one weight matrix"),
        (["--preset", "realmlp_td", "--ensemble", "4", "--ensemble-groups", "2",
          "--checkpoint", "c.npz"], "does not work with --checkpoint/--resume"),
        (["--backend", "dask", "--scheduler", "tcp://127.0.0.1:1"],
         "one network trains in one process"),
    ],
    ids=["classic", "too-few-members", "batch-ensemble", "checkpoint", "one-network-on-dask"],
)  # fmt: skip
def test_what_groups_refuse(
    cohort_csv: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "m.npz"
    base = ["train", str(cohort_csv), "--target", "status", "--out", str(out)]
    result = CliRunner().invoke(app, [*base, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_cross_validation_refuses_groups(cohort_csv: Path) -> None:
    settings = settings_for(ensemble=2, ensemble_groups=2)
    with pytest.raises(crossval.UsageError, match="--ensemble-groups applies to `mlpcli train`"):
        crossval.cross_validate(str(cohort_csv), settings, folds=2)
