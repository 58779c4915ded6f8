"""Hyperparameter search: spaces read through the option parsers, grid and random candidates,
ranking in the metric's direction, and a search that finds the configuration built to win."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli import crossval, metrics, modelfile, pipeline, tuning
from mlpcli.config import Settings, resolve
from mlpcli.errors import DivergenceError, UsageError

BASE = {"target": ["y"], "id": ["sample"], "hidden": "8", "epochs": 15, "batch_size": 16}


def base(**extra: object) -> Settings:
    return resolve({**BASE, **extra})


def space_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "space.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def read(tmp_path: Path, text: str) -> tuning.SearchSpace:
    return tuning.read_space(space_file(tmp_path, text), base())


@pytest.fixture
def separable(tmp_path: Path) -> str:
    """Two classes split by a line through the origin: easy for a good learning rate."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame.insert(0, "sample", [f"S{i}" for i in range(90)])
    frame["y"] = np.where(X[:, 0] - X[:, 1] > 0, "up", "down")
    path = tmp_path / "separable.csv"
    frame.to_csv(path, index=False)
    return str(path)


# --- reading spaces -----------------------------------------------------------------------------


def test_space_keys_take_dashes_underscores_and_section_tables(tmp_path: Path) -> None:
    space = read(
        tmp_path,
        'weight-decay = [0.0, 0.01]\nepochs = 20\n[model]\nhidden = ["16", "64,32"]\n'
        '[train]\nlr = {distribution = "loguniform", low = 1e-4, high = 1e-1}\n',
    )
    assert space.names == ["weight_decay", "epochs", "hidden", "lr"]
    assert space.dimensions["weight_decay"] == [0.0, 0.01]
    assert space.dimensions["epochs"] == [20]  # a single value is fixed
    assert space.dimensions["lr"] == tuning.LogUniform(1e-4, 1e-1)


def test_hidden_values_go_through_the_train_parser(tmp_path: Path) -> None:
    space = read(tmp_path, 'hidden = ["", "16", "64,32", [8, 4]]\n')
    candidates = tuning.make_candidates(space, base())
    assert [c.settings.model.hidden for c in candidates] == [(), (16,), (64, 32), (8, 4)]
    assert [tuning.display(c.params["hidden"]) for c in candidates] == ["", "16", "64,32", "8,4"]


BAD_SPACES = {
    "unknown-key": ("learning_rate = [0.1]", r"Unknown option\(s\) 'learning_rate' in --space "),
    "unknown-lists-known": ("learning_rate = [0.1]", r"known options: .*\blr\b"),
    "data-option": ("target = ['y']", r"--target choose\(s\) the data, which a search cannot"),
    "duplicate": ("lr = [0.1]\nLR = [0.2]\n'--lr' = [0.3]", r"option 'lr' appears twice"),
    "hidden-parser": ('hidden = ["16", "x"]', r"--hidden takes positive layer sizes .* got 'x'"),
    "lr-parser": ("lr = [0.01, -1]", r"--lr must be > 0; got -1"),
    "empty-list": ("lr = []", r"lr has an empty list of values"),
    "unknown-distribution": (
        'lr = {distribution = "normal", low = 0, high = 1}',
        r"distribution = one of loguniform, uniform, int, choice; got 'normal'",
    ),
    "no-distribution": ("lr = {low = 0.1, high = 1}", r"lr needs distribution = one of"),
    "loguniform-low": (
        'lr = {distribution = "loguniform", low = 0, high = 1}',
        r"loguniform needs low > 0",
    ),
    "low-above-high": (
        'lr = {distribution = "uniform", low = 1, high = 0.5}',
        r"needs finite low < high",
    ),
    "missing-high": (
        'lr = {distribution = "uniform", low = 0.1}',
        r"takes exactly distribution, high, low; got distribution, low",
    ),
    "int-bounds": (
        'epochs = {distribution = "int", low = 1.5, high = 9}',
        r"int needs whole low and high",
    ),
    "bound-outside-option": (
        'dropout = {distribution = "uniform", low = 0.1, high = 1.5}',
        r"--dropout must be .*< 1; got 1.5",
    ),
    "choice-parser": (
        'optimizer = {distribution = "choice", values = ["adam", "lbfgs"]}',
        r"--optimizer got 'lbfgs'; choose one of",
    ),
    "empty": ("", r"the search space is empty"),
    "bad-toml": ("lr = [0.1", r"is not valid TOML"),
}


@pytest.mark.parametrize("case", list(BAD_SPACES), ids=list(BAD_SPACES))
def test_bad_spaces_are_usage_errors_naming_the_problem(tmp_path: Path, case: str) -> None:
    text, message = BAD_SPACES[case]
    with pytest.raises(UsageError, match=message):
        read(tmp_path, text + "\n")


def test_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--space file '.*nope.toml' does not exist"):
        tuning.read_space(tmp_path / "nope.toml", base())


def test_candidate_hyperparameters_are_checked_before_training(tmp_path: Path) -> None:
    space = read(tmp_path, 'optimizer = ["adam", "sgd"]\nbeta1 = [0.8]\n')
    with pytest.raises(UsageError, match=r"Candidate 2 \(optimizer=sgd beta1=0.8\): --beta1"):
        tuning.make_candidates(space, base())


def test_command_line_values_that_are_searched_are_flagged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    space = read(tmp_path, "lr = [0.1, 0.01]\nepochs = [5]\n")
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        tuning.warn_overridden(space, {"lr": "0.5", "epochs": None, "seed": "3"})
    assert [r.getMessage() for r in caplog.records] == [
        "--lr given on the command line is searched in "
        f"{space.source}; the space's values are used."
    ]


# --- candidates ---------------------------------------------------------------------------------


def test_grid_spans_every_combination_in_file_order(tmp_path: Path) -> None:
    space = read(tmp_path, 'hidden = ["16", "64,32"]\nlr = [0.001, 0.01, 0.1]\n')
    params = [c.params for c in tuning.make_candidates(space, base(), "grid")]
    assert params == [{"hidden": h, "lr": lr} for h in ("16", "64,32") for lr in (0.001, 0.01, 0.1)]


def test_grid_refuses_distributions(tmp_path: Path) -> None:
    space = read(tmp_path, 'lr = {distribution = "loguniform", low = 1e-4, high = 1e-1}\n')
    with pytest.raises(UsageError, match=r"'lr' is a loguniform distribution.*--search random"):
        tuning.make_candidates(space, base(), "grid")


def test_unknown_search_lists_the_choices(tmp_path: Path) -> None:
    space = read(tmp_path, "lr = [0.1]\n")
    with pytest.raises(UsageError, match=r"Unknown search 'bayes'; choose one of: grid, random"):
        tuning.make_candidates(space, base(), "bayes")


def test_random_search_samples_within_bounds_from_the_seed(tmp_path: Path) -> None:
    text = (
        'lr = {distribution = "loguniform", low = 1e-4, high = 1e-1}\n'
        'dropout = {distribution = "uniform", low = 0.0, high = 0.5}\n'
        'epochs = {distribution = "int", low = 3, high = 5}\n'
        'optimizer = {distribution = "choice", values = ["adam", "sgd"]}\n'
        'hidden = ["4", "8"]\n'
    )
    space = read(tmp_path, text)
    draw = tuning.make_candidates(space, base(seed=5), "random", n_iter=200)
    lr = np.array([c.params["lr"] for c in draw])
    assert len(draw) == 200 and lr.min() >= 1e-4 and lr.max() <= 1e-1
    # Log-uniform: about a third of the draws in each decade.
    decades = np.bincount(np.floor(np.log10(lr)).astype(int) + 4, minlength=3)
    assert decades.min() > 40
    assert {c.params["epochs"] for c in draw} == {3, 4, 5}
    assert {c.params["optimizer"] for c in draw} == {"adam", "sgd"}
    assert {c.params["hidden"] for c in draw} == {"4", "8"}
    assert all(0.0 <= c.settings.model.dropout <= 0.5 for c in draw)
    again = tuning.make_candidates(space, base(seed=5), "random", n_iter=200)
    other = tuning.make_candidates(space, base(seed=6), "random", n_iter=200)
    assert [c.params for c in again] == [c.params for c in draw]
    assert [c.params for c in other] != [c.params for c in draw]


def test_random_search_of_a_grid_never_repeats_a_candidate(tmp_path: Path) -> None:
    space = read(tmp_path, "lr = [0.1, 0.01, 0.001]\nepochs = [5, 10, 20]\n")
    draw = tuning.make_candidates(space, base(), "random", n_iter=6)
    assert len({tuple(c.params.values()) for c in draw}) == 6
    assert len(tuning.make_candidates(space, base(), "random", n_iter=50)) == 9


def test_random_search_needs_a_positive_n_iter(tmp_path: Path) -> None:
    space = read(tmp_path, 'lr = {distribution = "uniform", low = 0.1, high = 0.2}\n')
    with pytest.raises(UsageError, match=r"--n-iter must be .* at least 1, got 0"):
        tuning.make_candidates(space, base(), "random", n_iter=0)


def test_encodings_are_shared_unless_preprocessing_changes() -> None:
    key = tuning.encoding_key
    assert key(base(lr=0.1)) == key(base(lr=0.01, hidden="64,32"))
    assert key(base(scale="robust")) != key(base())
    assert key(base(class_weight="balanced")) != key(base())


# --- ranking ------------------------------------------------------------------------------------


def fake_result(
    scores: list[list[float | None]], metric: str, errors: tuple[int, ...] = ()
) -> tuning.TuneResult:
    space = tuning.SearchSpace("test", {"lr": [i + 1.0 for i in range(len(scores))]})
    candidates = tuning.make_candidates(space, base())
    results = [
        [
            crossval.FoldResult(
                0, f, 10, 2, 5, 1.0, score=s, error="diverged" if i in errors else None
            )
            for f, s in enumerate(per)
        ]
        for i, per in enumerate(scores)
    ]
    return tuning.TuneResult(
        space, "grid", metrics.get(metric), 2, 1, "binary", base(), candidates, results, {}
    )


def test_ranking_follows_the_metric_direction_with_ties_sharing_a_rank() -> None:
    higher = fake_result([[0.7, 0.9], [0.9, 0.9], [0.6, 1.0], [0.5, 0.5]], "accuracy")
    rows = higher.rows()
    assert [r["candidate"] for r in rows] == [2, 1, 3, 4]
    assert [r["rank"] for r in rows] == [1, 2, 2, 4]  # 0.8 == 0.8: tied
    assert rows[1]["mean"] == pytest.approx(0.8)
    assert rows[1]["sd"] == pytest.approx(np.sqrt(0.02))  # (0.1^2 + 0.1^2) / (2 - 1)
    lower = fake_result([[0.7, 0.9], [0.9, 0.9], [0.5, 0.5]], "log_loss")
    assert [r["candidate"] for r in lower.rows()] == [3, 1, 2]
    assert lower.best() is lower.candidates[2]


def test_failed_and_undefined_candidates_come_last_without_rank() -> None:
    result = fake_result([[0.9, 0.9], [0.5, 0.6], [None, None]], "roc_auc", errors=(0,))
    rows = result.rows()
    assert [(r["candidate"], r["rank"], r["status"]) for r in rows] == [
        (2, 1, "ok"),
        (1, None, "diverged"),
        (3, None, "undefined"),
    ]
    assert result.best() is result.candidates[1]
    table = result.frame()
    assert list(table.columns) == [
        "rank", "candidate", "lr", "metric", "mean", "sd", "n_scores", "seconds", "status", "error"
    ]  # fmt: skip
    assert table["rank"].isna().tolist() == [False, True, True]


def test_refit_without_any_scored_candidate_says_why(separable: str) -> None:
    result = fake_result([[None, None]], "roc_auc", errors=(0,))
    with pytest.raises(DivergenceError, match=r"No candidate could be scored \(status: diverged\)"):
        tuning.refit(separable, result)


# --- searching ----------------------------------------------------------------------------------


def test_search_finds_the_learning_rate_built_to_win(tmp_path: Path, separable: str) -> None:
    space = tuning.read_space(space_file(tmp_path, "lr = [1e-6, 0.03]\n"), base())
    result = tuning.search(separable, base(), space, cv=3)
    rows = result.rows()
    assert result.best() is result.candidates[1]
    assert rows[0]["lr"] == 0.03 and rows[0]["mean"] > 0.85
    assert rows[1]["lr"] == 1e-6 and rows[1]["mean"] < rows[0]["mean"] - 0.2
    assert all(r["n_scores"] == 3 for r in rows)


def test_cv_scores_equal_those_of_mlpcli_cv(tmp_path: Path, separable: str) -> None:
    space = tuning.read_space(space_file(tmp_path, "lr = [0.03]\nhidden = ['4']\n"), base())
    result = tuning.search(separable, base(), space, cv=3, repeats=2, metric="accuracy")
    settings = result.candidates[0].settings
    cv = crossval.cross_validate(separable, settings, folds=3, repeats=2)
    assert result.rows()[0]["scores"] == cv.summary()["accuracy"]["values"]


def test_validation_split_score_equals_trains_validation_metric(
    tmp_path: Path, separable: str
) -> None:
    space = tuning.read_space(space_file(tmp_path, "lr = [0.03]\n"), base())
    result = tuning.search(separable, base(), space, metric="roc_auc")
    trained = pipeline.train(separable, result.candidates[0].settings)
    assert result.rows()[0]["scores"] == [trained.metrics["validation"]["roc_auc"]]


def test_validation_split_needs_validation_rows(tmp_path: Path, separable: str) -> None:
    space = tuning.read_space(space_file(tmp_path, "lr = [0.03]\n"), base())
    with pytest.raises(UsageError, match=r"needs validation rows: set --valid-fraction"):
        tuning.search(separable, base(valid_fraction=0.0), space)
    with pytest.raises(UsageError, match=r"--repeats needs --cv K"):
        tuning.search(separable, base(), space, repeats=2)


def test_a_diverging_candidate_does_not_stop_the_search(tmp_path: Path, separable: str) -> None:
    text = 'optimizer = ["sgd"]\nlr = [0.05, 1e6]\nscale = ["none"]\nbatch_size = [4]\n'
    space = tuning.read_space(space_file(tmp_path, text), base())
    result = tuning.search(separable, base(), space, cv=3)
    statuses = {r["lr"]: r["status"] for r in result.rows()}
    assert statuses == {0.05: "ok", 1e6: "diverged"}
    assert "Training diverged" in result.rows()[1]["error"]


def test_refit_saves_the_best_candidate_and_records_the_search(
    tmp_path: Path, separable: str
) -> None:
    space = tuning.read_space(space_file(tmp_path, 'lr = [1e-6, 0.03]\nhidden = ["4"]\n'), base())
    result = tuning.search(separable, base(), space, cv=3)
    outcome = tuning.refit(separable, result)
    out = tmp_path / "best.npz"
    pipeline.write_outputs(outcome, str(out))
    meta = modelfile.read_metadata(out)
    assert meta["settings"]["train"]["lr"] == 0.03 and meta["settings"]["model"]["hidden"] == [4]
    search = meta["search"]
    assert search["best"]["params"] == {"lr": 0.03, "hidden": "4"}
    assert search["space"] == {"lr": [1e-6, 0.03], "hidden": ["4"]}
    assert search["metric"] == "accuracy" and search["cv"] == 3
    assert [r["candidate"] for r in search["ranking"]] == [2, 1]


def test_results_are_written_as_csv_and_json(tmp_path: Path) -> None:
    import json

    result = fake_result([[0.5, 0.7], [0.9, 0.8]], "accuracy")
    csv, js = tmp_path / "r.csv", tmp_path / "r.json"
    assert tuning.write_results(result, str(csv), str(js)) == [str(csv), str(js)]
    table = pd.read_csv(csv)
    assert table["candidate"].tolist() == [2, 1] and table["rank"].tolist() == [1, 2]
    assert table["mean"].tolist() == pytest.approx([0.85, 0.6])
    doc = json.loads(js.read_text())
    assert doc["best"]["candidate"] == 2 and doc["ranking"][0]["scores"] == [0.9, 0.8]
    assert doc["provenance"]["seed"] == 0
