"""Cross-validation: folds that respect classes and groups, every sample held out once per
repeat, out-of-fold tables, and results that do not depend on --n-jobs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpcli import crossval, metric_reports, parallel, prepare
from mlpcli import task as tasks
from mlpcli.config import Settings, resolve
from mlpcli.errors import DivergenceError, UsageError

FAST = {"hidden": "8", "epochs": 8, "batch_size": 16, "seed": 3}


def write_table(folder: Path, task: str = "multiclass", n: int = 72, seed: int = 0) -> str:
    """A small learnable table with an ID and a group column (12 patients of 6 rows)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    frame = pd.DataFrame(X, columns=[f"g{i}" for i in range(4)])
    frame.insert(0, "sample", [f"S{i:03d}" for i in range(n)])
    frame["patient"] = [f"P{i // 6}" for i in range(n)]
    score = X[:, 0] + 0.5 * X[:, 1]
    targets = {
        "binary": {"y": np.where(score > 0, "sick", "well")},
        "multiclass": {"y": np.array(["a", "b", "c"])[np.digitize(score, [-0.5, 0.5])]},
        "regression": {"y": 3.0 * score + 10.0},
        "multilabel": {"y": (score > 0).astype(int), "z": (X[:, 2] > 0).astype(int)},
    }[task]
    for name, values in targets.items():
        frame[name] = values
    path = folder / f"{task}.csv"
    frame.to_csv(path, index=False)
    return str(path)


def settings_for(task: str = "multiclass", **extra: object) -> Settings:
    target = ["y", "z"] if task == "multilabel" else ["y"]
    values = {"target": target, "id": ["sample"], "drop": ["patient"], **FAST, **extra}
    if task == "multilabel":
        values["task"] = "multilabel"
    return resolve(values)


@pytest.fixture
def table(tmp_path: Path) -> str:
    return write_table(tmp_path)


def plans(path: str, settings: Settings, folds: int, repeats: int) -> tuple[list, crossval.Strata]:
    loaded = prepare.load_table(path, settings)
    strata = crossval.Strata.of(loaded, settings)
    return crossval.plan_folds(len(loaded.frame), strata, folds, repeats, 0), strata


# --- folds --------------------------------------------------------------------------------------


def test_every_sample_is_held_out_exactly_once_per_repeat(table: str) -> None:
    folds, _ = plans(table, settings_for(), folds=4, repeats=3)
    assert len(folds) == 12
    for repeat in range(3):
        held = np.concatenate([p.test_rows for p in folds if p.repeat == repeat])
        np.testing.assert_array_equal(np.sort(held), np.arange(72))
        for p in (p for p in folds if p.repeat == repeat):
            assert not set(p.train_rows) & set(p.test_rows)
            assert len(p.train_rows) + len(p.test_rows) == 72


def test_repeats_draw_different_folds_from_their_own_seed(table: str) -> None:
    folds, _ = plans(table, settings_for(), folds=4, repeats=2)
    first = [tuple(p.test_rows) for p in folds if p.repeat == 0]
    second = [tuple(p.test_rows) for p in folds if p.repeat == 1]
    assert set(first) != set(second)
    # Repeat 0's folds do not depend on how many repeats were asked for.
    alone, _ = plans(table, settings_for(), folds=4, repeats=1)
    assert [tuple(p.test_rows) for p in alone] == first


def test_stratification_holds_in_every_fold(table: str) -> None:
    folds, strata = plans(table, settings_for(), folds=4, repeats=2)
    assert strata.y is not None
    counts = np.bincount(strata.y)
    for p in folds:
        in_fold = np.bincount(strata.y[p.test_rows], minlength=len(counts))
        # Each class is spread evenly: floor or ceil of count / K in every fold.
        assert np.all(np.abs(in_fold - counts / 4) < 1), (in_fold, counts)


def test_a_group_is_never_split_across_folds(table: str) -> None:
    settings = settings_for(group="patient", drop=[])
    folds, strata = plans(table, settings, folds=4, repeats=2)
    assert strata.groups is not None
    for repeat in range(2):
        fold_of_group: dict[int, int] = {}
        for p in (p for p in folds if p.repeat == repeat):
            assert not set(strata.groups[p.train_rows]) & set(strata.groups[p.test_rows])
            for g in set(strata.groups[p.test_rows]):
                assert fold_of_group.setdefault(int(g), p.fold) == p.fold


def test_inner_validation_rows_come_from_the_training_folds(table: str) -> None:
    settings = settings_for(group="patient", drop=[], valid_fraction=0.25)
    loaded = prepare.load_table(table, settings)
    strata = crossval.Strata.of(loaded, settings)
    plan = crossval.plan_folds(72, strata, 3, 1, 0)[0]
    fold = crossval.encode_fold(loaded, settings, strata, plan)
    assert fold.prepared.X_val is not None and len(fold.prepared.X_val) > 0
    assert len(fold.prepared.X) + len(fold.prepared.X_val) == len(plan.train_rows)
    assert len(fold.X_test) == len(plan.test_rows)


def test_valid_file_is_refused_with_a_reason(table: str) -> None:
    with pytest.raises(UsageError, match=r"--valid-file does not apply to cross-validation"):
        crossval.cross_validate(table, settings_for(valid_file=table), folds=3)


def test_repeats_below_one_are_a_usage_error(table: str) -> None:
    with pytest.raises(UsageError, match=r"--repeats must be .* at least 1, got 0"):
        crossval.cross_validate(table, settings_for(), folds=3, repeats=0)


def test_streams_are_independent_of_each_other() -> None:
    draws = {
        key: parallel.stream(7, *key).integers(1 << 62)
        for key in [(0, 0), (0, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (2,)]
    }
    assert len(set(draws.values())) == len(draws)
    assert parallel.stream(7, 1, 0, 1).integers(1 << 62) == draws[(1, 0, 1)]


# --- running folds ------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression", "multilabel"])
def test_cross_validate_reports_every_metric_and_out_of_fold_rows(
    tmp_path: Path, task: str
) -> None:
    path = write_table(tmp_path, task)
    result = crossval.cross_validate(path, settings_for(task), folds=3, repeats=2, predictions=True)
    assert result.task == task and len(result.results) == 6
    summary = result.summary()
    headline = {"regression": "average.r2", "multilabel": "subset_accuracy"}.get(task, "accuracy")
    values = summary[headline]["values"]
    assert len(values) == 6 and summary[headline]["n"] == 6
    assert summary[headline]["mean"] == pytest.approx(np.mean(values))
    oof = result.predictions
    assert oof is not None and len(oof) == 2 * 72
    assert list(oof.columns[:3]) == ["sample", "repeat", "fold"]
    # Every sample once per repeat, in table order within a repeat.
    for repeat in (1, 2):
        assert list(oof[oof["repeat"] == repeat]["sample"]) == [f"S{i:03d}" for i in range(72)]
    assert set(oof["fold"]) == {1, 2, 3}
    probas = [c for c in oof.columns if c.startswith("proba_")]
    expected = {
        "binary": ["proba_sick", "proba_well"],
        "multiclass": ["proba_a", "proba_b", "proba_c"],
        "regression": [],
        "multilabel": ["proba_y", "proba_z"],
    }[task]
    assert probas == expected
    if task in ("binary", "multiclass"):
        np.testing.assert_allclose(oof[probas].sum(axis=1), 1.0, rtol=1e-5)
        assert set(oof["prediction"]) <= set(oof["true"])
    if task == "regression":
        # Predictions are in the target's units (around 10), not standardised.
        assert abs(oof["prediction"].mean() - 10.0) < 3.0


def test_out_of_fold_accuracy_matches_the_fold_reports(table: str) -> None:
    result = crossval.cross_validate(table, settings_for(), folds=3, predictions=True)
    oof = result.predictions
    assert oof is not None
    per_fold = oof.groupby("fold").apply(lambda f: float((f["true"] == f["prediction"]).mean()))
    by_fold = {r.fold + 1: (r.report or {})["accuracy"] for r in result.results}
    assert per_fold.to_dict() == pytest.approx(by_fold)


def test_rows_are_numbered_without_an_id_column(table: str) -> None:
    settings = resolve({"target": ["y"], "drop": ["patient", "sample"], **FAST})
    oof = crossval.cross_validate(table, settings, folds=3, predictions=True).predictions
    assert oof is not None and list(oof["row"]) == list(range(1, 73))


@pytest.mark.slow
def test_results_are_identical_with_one_and_two_jobs(table: str) -> None:
    settings = settings_for(valid_fraction=0.2)
    runs = [
        crossval.cross_validate(table, settings, folds=3, repeats=2, n_jobs=jobs, predictions=True)
        for jobs in (1, 2)
    ]
    one, two = runs
    assert one.summary() == two.summary()
    assert [r.report for r in one.results] == [r.report for r in two.results]
    for a, b in zip(one.results, two.results, strict=True):
        assert a.outputs is not None and b.outputs is not None
        assert a.outputs.tobytes() == b.outputs.tobytes()  # bitwise
    assert one.predictions is not None and two.predictions is not None
    pd.testing.assert_frame_equal(one.predictions, two.predictions)


def test_run_fold_works_on_read_only_arrays(table: str) -> None:
    """joblib hands large arrays to workers as read-only memory maps."""
    settings = settings_for()
    loaded = prepare.load_table(table, settings)
    strata = crossval.Strata.of(loaded, settings)
    fold = crossval.encode_fold(
        loaded, settings, strata, crossval.plan_folds(72, strata, 3, 1, 0)[0]
    )
    first = crossval.run_fold(settings, fold, "accuracy")
    p = fold.prepared
    assert p.X_val is not None and p.Y_val is not None
    for array in (p.X, p.Y, p.X_val, p.Y_val, fold.X_test, fold.Y_test):
        array.flags.writeable = False
    again = crossval.run_fold(settings, fold, "accuracy")
    # Running a fold twice from the same object gives the same result: nothing is consumed.
    assert again.report == first.report and again.score == first.score


def _fold_arrays(fold: crossval.EncodedFold) -> list[bytes]:
    p = fold.prepared
    arrays = [p.X, p.Y, p.X_val, p.Y_val, fold.X_test, fold.Y_test, fold.test_rows]
    return [np.ascontiguousarray(a).tobytes() for a in arrays if a is not None]


@pytest.mark.parametrize("folds", [3, None], ids=["cv", "validation-split"])
def test_a_worker_rebuilds_each_fold_from_the_file_exactly(
    table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folds: int | None
) -> None:
    """What a dask worker does with a `FileRef` (read the file, encode its fold) gives the
    same arrays and generator state as this process's encoding, from another folder too."""
    settings = settings_for(valid_fraction=0.2)
    replay = parallel.LogReplay()
    if folds is None:
        here = [crossval.validation_fold(table, settings, replay)]
    else:
        here = crossval.encode_folds(prepare.load_table(table, settings), settings, 3, 2, replay)
    sha = next(iter(here[0].prepared.inputs.values()))
    refs = crossval.fold_refs(table, sha, settings, folds, 2, len(here))
    monkeypatch.chdir(tmp_path.parent)  # a worker's working folder is not ours
    for mine, ref in zip(here, refs, strict=True):
        theirs = crossval.parallel.resolve(ref)
        assert _fold_arrays(theirs) == _fold_arrays(mine)
        assert theirs.rng_state == mine.rng_state
    with pytest.raises(crossval.parallel.DataError, match="differs from the one this machine"):
        crossval.parallel.resolve(crossval.fold_refs(table, "0" * 64, settings, folds, 2, 1)[0])


def test_a_diverging_fold_is_named(table: str) -> None:
    settings = settings_for(optimizer="sgd", lr=1e6, scale="none", batch_size=4)
    with pytest.raises(DivergenceError, match=r"^Repeat 1, fold \d: Training diverged"):
        crossval.cross_validate(table, settings, folds=3)


def test_fold_warnings_are_shown_once(table: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(valid_fraction=0.0)
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        crossval.cross_validate(table, settings, folds=3, repeats=2)
    texts = [r.getMessage() for r in caplog.records if "early stopping watches" in r.getMessage()]
    assert texts == ["No validation rows: early stopping watches train_loss instead of val_loss."]


# --- scoring and summaries ----------------------------------------------------------------------


def test_summarise_uses_the_sample_sd_over_defined_values() -> None:
    s = crossval.summarise([1.0, None, 2.0, 4.0])
    # mean 7/3; squared deviations (16 + 1 + 25) / 9 = 42/9, over n - 1 = 2: 7/3.
    assert s["mean"] == pytest.approx(7 / 3)
    assert s["sd"] == pytest.approx(np.sqrt(7 / 3))
    assert s["n"] == 3 and s["values"] == [1.0, None, 2.0, 4.0]
    assert crossval.summarise([None])["mean"] is None
    assert crossval.summarise([0.5])["sd"] is None


def test_flatten_report_keeps_metrics_and_leaves_out_counts() -> None:
    report = metric_reports.classification_report(
        np.array([0, 1, 1, 0]),
        np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6]]),
        ["n", "p"],
    )
    flat = crossval.flatten_report(report)
    assert flat["accuracy"] == 0.5
    assert flat["per_class.p.recall"] == 0.5
    assert "macro_avg.f1" in flat and "threshold" not in flat
    assert not any("support" in k or "confusion" in k for k in flat)


class _Encoder:
    """The part of a TargetEncoder that scoring reads."""

    def __init__(self, task: str) -> None:
        self.task = task

    def decode(self, A: np.ndarray) -> np.ndarray:
        return A * 2.0 + 1.0


CASES = {
    # name: (task, y_index, Y, P, expected)
    "accuracy-binary": (
        "binary",
        [0, 1, 1, 0],
        [[0], [1], [1], [0]],
        [[0.2], [0.9], [0.4], [0.6]],
        0.5,
    ),
    "accuracy-multiclass": (
        "multiclass",
        [0, 2, 1],
        None,
        [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]],
        2 / 3,
    ),
    "roc_auc-binary": ("binary", [0, 0, 1, 1], None, [[0.1], [0.4], [0.35], [0.8]], 0.75),
    "mae-regression": ("regression", None, [[0.0], [1.0]], [[0.5], [1.0]], 0.5),
    "hamming_loss-multilabel": (
        "multilabel",
        None,
        [[1, 0], [0, 1]],
        [[0.9, 0.6], [0.2, 0.7]],
        0.25,
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_metric_score_by_hand(case: str) -> None:
    task, y_index, true, outputs, expected = CASES[case]
    P = np.asarray(outputs, dtype=np.float64)
    Y = np.asarray(true, dtype=np.float64) if true is not None else np.zeros_like(P)
    y = None if y_index is None else np.asarray(y_index)
    name = case.split("-")[0]
    encoder: Any = _Encoder(task)
    score = crossval.metric_score(name, encoder, y, Y, P)
    # mae in original units (decode: 2 A + 1): (|2 - 1| + |3 - 3|) / 2 = 0.5.
    assert score == pytest.approx(expected)


def test_undefined_metric_scores_none() -> None:
    encoder: Any = _Encoder("binary")
    score = crossval.metric_score(
        "roc_auc",
        encoder,
        np.array([1, 1]),
        np.ones((2, 1)),
        np.ones((2, 1)) / 2,
    )
    assert score is None


@pytest.mark.parametrize("task", list(tasks.TASKS), ids=str)
def test_default_metric_applies_to_its_task(task: str) -> None:
    assert crossval.check_metric(None, task).name == tasks.TASKS[task].default_metric


def test_metric_of_another_task_lists_the_choices() -> None:
    with pytest.raises(UsageError, match=r"--metric r2 does not apply to a binary task; .*roc_auc"):
        crossval.check_metric("r2", "binary")


# --- executors ----------------------------------------------------------------------------------


def test_cv_json_nests_metrics_as_evaluate_does(tmp_path: Path) -> None:
    """`cv --json` metrics have the shape of one evaluation report (evaluate's JSON), each leaf
    the mean, sd, n and per-fold values of that metric; the flat summary has the same leaves."""
    path = write_table(tmp_path, "multiclass")
    result = crossval.cross_validate(path, settings_for("multiclass"), folds=3, repeats=1)
    nested = result.to_dict()["metrics"]
    report = result.results[0].report
    assert set(nested["macro_avg"]) <= set(report["macro_avg"])
    assert set(nested["per_class"]) == set(report["per_class"])
    flat = result.summary()
    assert nested["accuracy"] == flat["accuracy"]
    assert nested["macro_avg"]["f1"] == flat["macro_avg.f1"]
    label = next(iter(report["per_class"]))
    assert nested["per_class"][label]["recall"] == flat[f"per_class.{label}.recall"]
    assert "macro_avg.f1" not in nested
