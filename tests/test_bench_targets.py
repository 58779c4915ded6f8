"""bench/targets.py's verdicts on made-up figures: every issue-16 target shows in every report,
met, not met with the gap and the profile that explains it, or not measured and why."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

PATH = Path(__file__).resolve().parents[1] / "bench" / "targets.py"


@pytest.fixture(scope="module")
def targets():
    spec = importlib.util.spec_from_file_location("bench_targets", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_targets"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    module.OUTOFCORE_PATH = PATH.with_name("no-such-file.json")  # no long run, unless a test says
    yield module
    del sys.modules["bench_targets"]


def _case(**seconds: list[float]) -> SimpleNamespace:
    return SimpleNamespace(
        runs={k: [{"seconds": s} for s in v] for k, v in seconds.items()},
        case=SimpleNamespace(n_samples=100_000, batch_size=32),
    )


def test_nothing_measured_still_gives_one_row_per_target(targets) -> None:
    rows = targets.collect(targets.Measured())
    assert len(rows) == len(targets.TARGETS) + 1  # predict: the first run and the cached one
    assert all(row.ok is None and row.measured.startswith("not measured") for row in rows)


def test_batch32_share_is_floor_over_engine_medians(targets) -> None:
    case = _case(mlpcli=[2.0, 1.0, 3.0], gemm=[1.1, 1.2, 1.0])  # medians 2.0 and 1.1
    [row] = targets.batch32_floor(targets.Measured(cases={"batch32": case}))
    text, ok = row.measured, row.ok
    assert text.startswith("55%") and ok is True
    case = _case(mlpcli=[2.0], gemm=[1.0])
    [row] = targets.batch32_floor(targets.Measured(cases={"batch32": case}))
    text, ok = row.measured, row.ok
    assert text.startswith("50%") and ok is False


def test_batch32_gap_is_per_step_and_quotes_the_profile(targets) -> None:
    # 3,125 steps: 2 s is 640 us a step; 55% of a 1 s floor allows 582 us.
    parts = {"gemm": 320.0, "layers": 90.0, "loss": 20.0, "adam": 120.0, "norms": 5.0,
             "gather": 10.0, "rest": 75.0}  # fmt: skip
    profile = {"adam_us": 120.0, "bare_share": 0.48, "step_us": 640.0, "budget_us": 582.0,
               "call_us": 1.5, "parts": parts}  # fmt: skip
    measured = targets.Measured(
        cases={"batch32": _case(mlpcli=[2.0], gemm=[1.0])}, figures={"stepcost": profile}
    )
    [row] = targets.batch32_floor(measured)
    assert row.ok is False
    assert "gap: 58 us per step over the 582 allowed" in row.measured
    assert "Adam alone 120 us, the bare NumPy loop 48% of the floor" in row.measured
    assert "| Adam's update (12 passes over 58,755 float32 weights) | 120 | 19% |" in row.profile


def test_recipe_and_ensemble_rows(targets) -> None:
    recipe = {
        "ratio": 0.25,
        "detail": "worst table; 0.25, 0.1",
        "ensemble": {"K=4, shared batches": (4, 3.5), "K=4, split batches": (4, 1.1)},
    }
    m = targets.Measured(figures={"recipe": recipe})
    [row] = targets.recipe_vs_realmlp(m)
    text, ok = row.measured, row.ok
    assert text.startswith("0.25x") and ok is False
    verdicts = [row.ok for row in targets.ensemble_cost(m)]
    assert verdicts == [False, True]  # 3.5 > 0.5 * 4 >= 1.1
    five = {"ensemble": {"K=5, shared batches": (5, 2.8)}, "ratio": None, "why": "-"}
    rows = targets.ensemble_cost(targets.Measured(figures={"recipe": five}))
    assert [row.ok for row in rows] == [False, True]  # 2.8 > 0.5 * 5, but < 3 (issue 14)
    late = {**recipe, "skipped": {"table mlc_churn": "not run", "realmlp, real tables": "-"}}
    [row] = targets.recipe_vs_realmlp(targets.Measured(figures={"recipe": late}))
    assert row.measured.endswith("; not run (time budget): mlc_churn")
    skipped = targets.Measured(figures={"recipe": {"ratio": None, "why": "no pytabkit"}})
    [row] = targets.recipe_vs_realmlp(skipped)
    text, ok = row.measured, row.ok
    assert ok is None and "no pytabkit" in text


def test_startup_rows_say_met_or_the_gap_with_the_floors(targets) -> None:
    median = {
        "python -c pass": 0.012,
        "import click": 0.040,
        "import typer": 0.061,
        "mlpcli --help": 0.05,
        "mlpcli train --help": 0.06,
        "mlpcli train --help, help not kept": 0.20,
        "mlpcli inspect MODEL": 0.27,
    }
    found = {"median": median, "cpu": median, "load": (1.0, 1.0)}
    rows = targets.startup(targets.Measured(figures={"startup": found}))
    assert [row.ok for row in rows] == [True, True, False]
    assert "(met)" in rows[0].measured and "`import typer` 0.061 s" in rows[0].measured
    assert "; first run (help not kept): 0.200 s wall" in rows[1].measured
    assert "first run" not in rows[0].measured
    assert "(gap +0.120 s)" in rows[2].measured


def _cprofile(*names: str) -> dict:
    return {"total": 2.0, "imports": 0.5, "rows": [[1.0 / (i + 1), 0.5 / (i + 1), name]
                                                   for i, name in enumerate(names)]}  # fmt: skip


def _unmet_figures() -> dict:
    """Figures of a run that misses every target it measures, with every profile taken."""
    io = {
        "load_before": "2.0, 2.0, 2.0",
        "read": {
            "file": "train_1M.csv",
            **{"whole_wall": 10.0, "whole_cpu": 9.0, "whole_peak": 2**31},
            **{"blocks_wall": 6.0, "blocks_cpu": 11.0, "blocks_peak": 2**29},
            **{"arrow_wall": 6.0, "arrow_cpu": 11.0, "arrow_peak": 2**29, "same": True},
        },
        "cache": {
            "file": "train_1M.csv",
            "first_wall": 10.0,
            "first_cpu": 9.0,
            "second_wall": 2.0,
            "second_cpu": 1.5,
            "same": True,
        },
        "whole_train": {
            **{"ratio": 0.5, "mlpcli_wall": 4.0, "sklearn_wall": 8.0, "cpu_ratio": 0.5},
            "predict_us_per_row": {"rows": 100_000, "parse": 6.5, "forward": 1.9, "csv": 1.0},
            "train_stages": {"total": 4.0, "imports": 0.4, "read": 1.8, "fit_model": 1.6},
        },
    }
    predict = {"rows": 1_000_000, "rate": 120_000.0, "peak": 2**28, "peak_below": 2**28,
               "rows_below": 100_000}  # fmt: skip
    stages = {"read": {"peak_rss": 600 << 20}, "fit_model": {"peak_rss": 700 << 20}}
    startup = {"python -c pass": 0.02, "mlpcli --help": 0.2, "mlpcli train --help": 0.2,
               "mlpcli inspect MODEL": 0.5}  # fmt: skip
    imports = {"heavy": "numpy", "top": [(0.3, "mlpcli.describe"), (0.1, "typer")]}
    parts = {"gemm": 320.0, "adam": 120.0, "rest": 200.0}
    return {
        "io": io,
        "predict": predict,
        "predict_cached": {**predict, "rate": 250_000.0},
        "train_peak": {1_000_000: (900 << 20, 400_000_000)},
        "phases": {"n_rows": 1_000_000, "stages": stages, "peak_rss": 900 << 20},
        "stepcost": {
            "adam_us": 120.0,
            "bare_share": 0.4,
            "step_us": 640.0,
            "budget_us": 582.0,
            "parts": parts,
        },
        "recipe": {
            "ratio": 0.5,
            "detail": "worst table cls3k; cls3k 0.50",
            "ensemble": {"K=5, shared batches": (5, 4.0)},
        },
        "startup": {"median": startup, "cpu": startup, "load": (1.0, 1.0)},
        "startup_imports": {name: imports for name in startup},
        "profiles": {
            "read": _cprofile("pandas/io/parsers/c_parser_wrapper.py:281(read)"),
            "cache_hit": _cprofile("<built-in method marshal.loads>"),
            "predict": _cprofile("mlpcli/nn/layers.py:95(forward)"),
            "predict_cached": _cprofile("mlpcli/data/cache.py:316(_text)"),
            "recipe_one": {**_cprofile("mlpcli/nn/pbld.py:10(forward)"), "what": "cls3k", "k": 1},
            "recipe_k": {**_cprofile("mlpcli/nn/pbld.py:10(forward)"), "what": "cls3k", "k": 5},
        },
    }


def test_every_target_not_met_carries_the_profile_that_explains_it(targets) -> None:
    batch32 = _case(mlpcli=[2.0], gemm=[1.0])
    rows = targets.collect(targets.Measured(cases={"batch32": batch32}, figures=_unmet_figures()))
    missed = [row for row in rows if row.ok is False]
    # All but the 3 out-of-core targets (no long run here), 2 ensemble and 3 start-up rows,
    # and predict's first and cached runs.
    assert len(missed) == len(targets.TARGETS) - 3 + 1 + 2 + 1
    assert all(row.label.startswith("Out of core") for row in rows if row.ok is not False)
    assert targets.unexplained(rows) == []
    profile = {row.label.split(":")[0]: "\n".join(row.profile) for row in missed}
    expected = {
        "Whole `train` command, 100,000 x 100 CSV": "| read the CSV (data.read_table) | 1.80 |",
        "CSV reading, 1,000,000 x 100": "`pandas/io/parsers/c_parser_wrapper.py:281(read)`",
        "Table cache": "`<built-in method marshal.loads>` | 1.000 | 50% |",
        "`train` on 1,000,000 x 100": "| train | 0.68 GiB |",
        "Small batches": "| Adam's update (12 passes over 58,755 float32 weights) | 120 | 19% |",
        "The recipe": "`mlpcli/nn/pbld.py:10(forward)`",
        "Ensemble, K=5, shared batches": "| `mlpcli/nn/pbld.py:10(forward)` | 1.000 | 1.000 |",
        "Start-up": "| `mlpcli.describe` | 0.300 |",
        "`predict`, main-case model, CSV to CSV, first run (parses the CSV, `--no-cache`)":
            "`mlpcli/nn/layers.py:95(forward)`",
        "`predict`, main-case model, CSV to CSV, cached run (the table cache filled by an "
        "earlier run)": "`mlpcli/data/cache.py:316(_text)`",
    }  # fmt: skip
    for label, line in expected.items():
        assert line in profile[label], (label, profile[label])
    assert "| parse | 6.50 |" in profile[next(k for k in profile if "first run" in k)]


def test_a_gap_whose_profile_was_not_taken_says_so(targets) -> None:
    figures = _unmet_figures()
    del figures["profiles"], figures["phases"], figures["startup_imports"], figures["stepcost"]
    del figures["io"]["whole_train"]["train_stages"]
    batch32 = _case(mlpcli=[2.0], gemm=[1.0])
    rows = targets.collect(targets.Measured(cases={"batch32": batch32}, figures=figures))
    for row in (row for row in rows if not row.label.startswith("Out of core")):
        assert row.ok is False and row.profile, row.label
        assert any(line.startswith("No ") for line in row.profile), (row.label, row.profile)


def test_a_target_met_carries_no_profile_and_a_gap_without_one_is_listed(targets) -> None:
    figures = {"train_peak": {1_000_000: (700 << 20, 400_000_000)}}
    [row] = targets.train_memory(targets.Measured(figures=figures))
    assert row.ok is True and row.profile == ()
    bare = targets.Row("a target", "a gap", False)
    assert targets.unexplained([row, bare]) == [bare]


def test_the_report_numbers_each_gap_and_prints_its_profile_after_the_table(targets) -> None:
    spec = importlib.util.spec_from_file_location("bench_run", PATH.with_name("run.py"))
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    path, modules = list(sys.path), set(sys.modules)
    sys.modules["bench_run"] = run  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(run)  # puts bench/ on sys.path and imports its modules
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:  # bench's own modules, not NumPy's
            if str(PATH.parent) in str(getattr(sys.modules[name], "__file__", "")):
                del sys.modules[name]
    run.collect, run.unexplained = targets.collect, targets.unexplained  # the fixture's module
    figures = {"train_peak": {1_000_000: (900 << 20, 400_000_000)}, "predict": None}
    lines = run.targets16_section(targets.Measured(figures=figures))
    row = next(line for line in lines if line.startswith("| `train` on 1,000,000"))
    assert row.endswith("| **not met** (profile: gap 1) |")
    heading = lines.index("### Gap 1: `train` on 1,000,000 x 100: peak memory <= 2x the float32 "
                          "features")  # fmt: skip
    assert heading > lines.index(row)
    assert "No memory profile: bench/phases.py did not run on the 1,000,000-row CSV." in lines
    recipe = {"ratio": None, "why": "-", "ensemble": {"K=5, shared batches": (5, 4.0)}}
    lines = run.targets16_section(targets.Measured(figures={"recipe": recipe}))
    assert "### Gap 2: Ensemble, K=5, shared batches: < 3x one model's time (issue 14)" in lines
    assert "The profile is gap 1's." in lines  # the same profile is printed once


def test_out_of_core_rows_read_the_long_run_and_say_it_was_not_this_run(targets) -> None:
    run = {"n_train": 9_000_000, "n_valid": 2_000_000, "peak_rss_bytes": 400 << 20,
           "cgroup_limit_bytes": 512 << 20, "cgroup_failcnt": 0, "cgroup_oom_kills": 0,
           "cgroup_peak_anon_bytes": 300 << 20, "rows_per_second": 200_000, "wall_seconds": 9.0,
           "validation": {"roc_auc": 0.86}}  # fmt: skip
    sample = {**run, "n_valid": 200_000, "rows_per_second": 500_000,
              "validation": {"roc_auc": 0.85}}  # fmt: skip
    r = {"table_columns": 51, "convert": run, "second": run, "sample_memory": sample,
         "sample_ooc": {**sample, "validation": {"roc_auc": 0.851}},
         "provenance": {"code": "at abc1234"}}  # fmt: skip
    rows = targets.collect(targets.Measured(figures={"outofcore": r}))[-4:]
    assert [row.ok for row in rows] == [True, True, False, True]  # 40% of the in-memory rate
    assert all("the long run at abc1234, not this run" in row.measured for row in rows)
    assert "| `train --out-of-core on` from the cache, under the limit |" in "\n".join(
        rows[2].profile
    )
    worse = {**r, "second": {**run, "validation": {"roc_auc": 0.84}}}
    [metric] = targets.outofcore_metric(targets.Measured(figures={"outofcore": worse}))
    assert metric.ok is False and metric.profile


def test_train_memory_says_the_margin_or_the_gap(targets) -> None:
    features = 400_000_000
    cases = ((750 << 20, True, "13 MiB under"), (800 << 20, False, "gap: 37 MiB over"))
    for peak, ok, words in cases:
        measured = targets.Measured(figures={"train_peak": {1_000_000: (peak, features)}})
        [row] = targets.train_memory(measured)
        text, verdict = row.measured, row.ok
        assert verdict is ok and words in text and "0.745 GiB allowed" in text, text
