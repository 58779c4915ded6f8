"""bench/quality.py's arithmetic and report, on made-up results (no table is loaded, nothing is
trained): the error measures, the shifted geometric mean, the splits and the Markdown layout."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PATH = Path(__file__).resolve().parents[1] / "bench" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("bench_quality", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_quality"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench_quality"]


def test_errors_by_hand(quality) -> None:
    assert (
        quality.error("classification", pd.Series(["a", "b", "b", "a"]), ["a", "b", "a", "a"])
        == 0.25
    )
    # residuals 1, -1, 0, 0 -> RMSE sqrt(1/2); y = 0, 2, 4, 6 has sd sqrt(5)
    y = pd.Series([0.0, 2.0, 4.0, 6.0])
    got = quality.error("regression", y, [1.0, 1.0, 4.0, 6.0])
    assert got == pytest.approx(math.sqrt(0.5) / math.sqrt(5.0))
    # a (n, 1) decode counts row by row, not broadcast against (n,)
    assert quality.error("regression", y, np.array([[1.0], [1.0], [4.0], [6.0]])) == got
    # labels compared as strings: numeric labels read back from a CSV still match
    assert quality.error("classification", pd.Series([1, 0]), np.array(["1", "0"])) == 0.0


def test_shifted_geometric_mean_by_hand(quality) -> None:
    """exp(mean(log(err + 0.01))): errors 0.09 and 0.99 -> sqrt(0.1 * 1.0) = 0.316..."""
    assert quality.shifted_geometric_mean([0.09, 0.99]) == pytest.approx(math.sqrt(0.1))
    assert quality.shifted_geometric_mean([0.0]) == pytest.approx(0.01)


def test_splits_are_disjoint_complete_and_seeded(quality) -> None:
    train, test = quality.split(101, seed=2)
    assert len(test) == 20 and len(train) == 81
    assert sorted([*train, *test]) == list(range(101))
    again = quality.split(101, seed=2)
    np.testing.assert_array_equal(train, again[0])
    assert not np.array_equal(test, quality.split(101, seed=3)[1])


def test_every_table_and_method_is_named_once(quality) -> None:
    assert len(quality.TABLES) == 13  # the tables, meats counted three times
    assert quality.REFERENCE in quality.METHODS
    assert all(t.task in ("classification", "regression") for t in quality.TABLES.values())


def test_report_lists_tables_ratios_times_and_skips(quality) -> None:
    results = quality.Results(
        errors={
            "hgb": {"a": [0.09], "b": [0.99]},
            "mlpcli": {"a": [0.19, 0.19], "b": [0.99, 0.99], "c": [0.09, 0.09]},
        },
        seconds={"hgb": {"a": 1.0, "b": 0.5}, "mlpcli": {"a": 2.0, "b": 1.0, "c": 9.0}},
        skipped={"realmlp-td": "pytabkit not installed"},
    )
    text = quality.report(results, ["a", "b", "c"], [0, 1], 1, ["--tables", "a,b,c"])
    assert "| a | 0.0900 (1) | 0.1900 |" in text  # hgb has one of the two seeds
    assert "| c | - | 0.0900 |" in text
    # common tables a, b: sqrt(0.1 * 1.0) and sqrt(0.2 * 1.0); all three: (0.2 * 1.0 * 0.1)^(1/3)
    hgb, mlpcli, every = math.sqrt(0.1), math.sqrt(0.2), 0.02 ** (1 / 3)
    assert f"| hgb | {hgb:.4f} | 1.000 | n/a | n/a | 1.5 |" in text  # time on a, b only
    assert f"| mlpcli | {mlpcli:.4f} | {mlpcli / hgb:.3f} | {every:.4f} | n/a | 3.0 |" in text
    assert "SGM, 2 common tables | ratio to hgb | SGM, all 3 tables" in text
    assert "Skipped realmlp-td: pytabkit not installed." in text
    assert "Command: `python bench/quality.py --tables a,b,c`" in text


def test_stored_results_are_reused_not_rerun(quality, tmp_path, monkeypatch) -> None:
    store = tmp_path / "results.jsonl"
    row = {"method": "hgb", "table": "pima", "seed": 0, "error": 0.25, "seconds": 1.5}
    store.write_text(__import__("json").dumps(row) + "\n")
    monkeypatch.setattr(quality, "load", lambda table: pytest.fail("a stored run was re-run"))
    results = quality.run(["pima"], [0], ["hgb"], 1, store)
    assert results.errors["hgb"] == {"pima": [0.25]}
    assert results.seconds["hgb"] == {"pima": 1.5}


def test_derived_auto_takes_the_better_validation_candidate_by_hand(quality) -> None:
    """Seed 0: the recipe validates better (0.9 > 0.8), its test error 0.10 counts; seed 1: a
    tie (0.7 each) keeps the first candidate (classic, 0.30); seed 2 lacks a validation score
    and is left out. Time: both candidates' seconds."""
    classic, recipe = quality.DERIVED["mlpcli-auto-derived"].candidates
    rows = {
        (classic, "t", 0): {"error": 0.20, "seconds": 1.0, "accuracy": 0.8},
        (recipe, "t", 0): {"error": 0.10, "seconds": 4.0, "accuracy": 0.9},
        (classic, "t", 1): {"error": 0.30, "seconds": 1.0, "r2": 0.7},
        (recipe, "t", 1): {"error": 0.05, "seconds": 4.0, "r2": 0.7},
        (classic, "t", 2): {"error": 0.30, "seconds": 1.0},
        (recipe, "t", 2): {"error": 0.05, "seconds": 4.0, "accuracy": 0.9},
    }
    results = quality.Results(rows=rows)
    quality.derive(results, "mlpcli-auto-derived", ["t"], [0, 1, 2])
    assert results.errors["mlpcli-auto-derived"] == {"t": [0.10, 0.30]}
    assert results.seconds["mlpcli-auto-derived"] == {"t": 10.0}
    assert results.wins["mlpcli-auto-derived"] == {"t": [recipe, classic]}


def test_a_stored_mlpcli_row_of_another_tree_is_rerun(quality, tmp_path, monkeypatch) -> None:
    """Baselines are reused whatever the tree; mlpcli's rows only when they measured it."""
    store = tmp_path / "results.jsonl"
    rows = [
        {"method": "mlpcli-realmlp", "table": "pima", "seed": 0, "error": 0.2, "seconds": 3.0,
         "tree": "abc1234"},
        {"method": "hgb", "table": "pima", "seed": 0, "error": 0.25, "seconds": 1.5},
    ]  # fmt: skip
    store.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(quality, "load", lambda table: pytest.fail("a stored run was re-run"))
    same = quality.run(["pima"], [0], ["mlpcli-realmlp", "hgb"], 1, store, tree="abc1234")
    assert same.errors == {"mlpcli-realmlp": {"pima": [0.2]}, "hgb": {"pima": [0.25]}}
    assert quality.reusable(rows[1], "hgb", "other") and not quality.reusable(
        rows[0], "mlpcli-realmlp", "other"
    )
    with pytest.raises(pytest.fail.Exception, match="re-run"):
        quality.run(["pima"], [0], ["mlpcli-realmlp"], 1, store, tree="other")


def test_run_seeds_reuses_the_other_seeds_rows_whatever_their_tree(
    quality, tmp_path, monkeypatch
) -> None:
    """--run-seeds 1: seed 0's row of another tree is reported, not re-run; seed 1 is run."""
    store = tmp_path / "results.jsonl"
    row = {"method": "mlpcli-realmlp", "table": "pima", "seed": 0, "error": 0.2, "seconds": 3.0,
           "tree": "old1234"}  # fmt: skip
    store.write_text(json.dumps(row) + "\n")
    ran: list[int] = []

    def fake(train, test, table, seed, threads):
        ran.append(seed)
        return test[table.target]  # no error

    frame = pd.DataFrame({"x": range(10), "type": ["a", "b"] * 5})
    monkeypatch.setattr(quality, "load", lambda table: frame)
    monkeypatch.setitem(quality.METHODS, "mlpcli-realmlp", quality.MethodInfo(fake))
    got = quality.run(["pima"], [0, 1], ["mlpcli-realmlp"], 1, store, tree="new", run_seeds={1})
    assert ran == [1] and got.errors["mlpcli-realmlp"]["pima"] == [0.2, 0.0]
    assert json.loads(store.read_text().splitlines()[1])["tree"] == "new"
    # stored rows are reported without the method's modules (pytabkit, say)
    monkeypatch.setitem(quality.METHODS, "mlpcli-realmlp", quality.MethodInfo(fake, ("no_such",)))
    assert quality.run(["pima"], [0], ["mlpcli-realmlp"], 1, store, stored_only=True).errors == {
        "mlpcli-realmlp": {"pima": [0.2]}
    }
    monkeypatch.setitem(quality.METHODS, "mlpcli-realmlp", quality.MethodInfo(fake))
    ran.clear()  # without run_seeds the row of the other tree is re-run
    quality.run(["pima"], [0], ["mlpcli-realmlp"], 1, store, tree="new")
    assert ran == [0]
    with pytest.raises(SystemExit):
        quality.main(["--seeds", "2", "--run-seeds", "2", "--stored-only"])


def test_a_section_compares_methods_on_their_common_seeds(quality, tmp_path) -> None:
    """--section 1:...: seed 0 only, so a method of one seed is set beside the others' seed 0;
    its CPU time is the sum of the rows' cpu_seconds (n/a where a row lacks it)."""
    store = tmp_path / "results.jsonl"
    rows = [
        {"method": "hgb", "table": "pima", "seed": 0, "error": 0.09, "seconds": 1.0},
        {"method": "hgb", "table": "pima", "seed": 1, "error": 0.49, "seconds": 1.0},
        {"method": "mlpcli-realmlp", "table": "pima", "seed": 0, "error": 0.19, "seconds": 4.0,
         "cpu_seconds": 3.5, "tree": "t"},
    ]  # fmt: skip
    store.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    out = tmp_path / "q.md"
    args = ["--tables", "pima", "--seeds", "2", "--stored-only", "--methods", "hgb"]
    args += ["--results", str(store), "--out", str(out), "--section", "1:hgb,mlpcli-realmlp"]
    assert quality.main(args) == 0
    main_part, section = out.read_text().split("## Seeds 0-0: hgb, mlpcli-realmlp\n", 1)
    assert "| hgb | 0.3000 | 1.000 | 2.0 | n/a |" in main_part  # mean 0.29, shifted by 0.01
    assert "| hgb | 0.1000 | 1.000 | 1.0 | n/a |" in section
    assert "| mlpcli-realmlp | 0.2000 | 2.000 | 4.0 | 3.5 |" in section
    with pytest.raises(SystemExit):
        quality.main(["--stored-only", "--section", "hgb"])
