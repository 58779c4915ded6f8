"""The scikit-learn estimators in the ecosystem (Pipeline, GridSearchCV, cross_val_score,
clone), DataFrames with mixed types, and the shared model file; scikit-learn's own checks are
in test_sklearn_checks.py."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip(
    "sklearn", reason='the sklearn extra is not installed (pip install ".[sklearn]")'
)

from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import mlpcli
from mlpcli.sklearn import MLPClassifier, MLPRegressor

ROOT = Path(__file__).resolve().parents[1]
EXPRESSION = ROOT / "sample_data" / "expression.csv"
FAST = {"hidden_layer_sizes": (16,), "max_iter": 40, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def expression() -> tuple[pd.DataFrame, pd.Series]:
    """The sample table as a user reads it: text (`batch`), numbers with missing cells."""
    frame = pd.read_csv(EXPRESSION)
    return frame.drop(columns=["subtype"]), frame["subtype"]


def mixed_frame(n: int = 120, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    group = rng.choice(["a", "b", "c"], size=n)
    X = pd.DataFrame({"x": x, "group": group, "noise": rng.normal(size=n)})
    X.loc[::7, "x"] = np.nan
    y = np.where(np.nan_to_num(x) + (group == "a") > 0.3, 10, 2)  # integer labels
    return X, y


def test_dataframe_with_text_and_missing_values_is_preprocessed_by_mlpcli() -> None:
    X, y = mixed_frame()
    clf = MLPClassifier(**FAST).fit(X, y)
    assert clf.classes_.tolist() == [2, 10] and clf.predict(X).dtype == y.dtype
    described = {d["column"]: d for d in clf.model_.preprocessor.describe()}
    assert described["group"]["encoding"] == "one-hot"
    assert described["group"]["levels"] == ["a", "b", "c"]
    assert described["x"]["impute"] == "median"
    # Columns are matched by name: reordered, with an extra column, the same predictions.
    shuffled = X[["noise", "group", "x"]].assign(extra="ignored")
    np.testing.assert_array_equal(clf.predict_proba(shuffled), clf.predict_proba(X))
    with pytest.raises(ValueError, match=r"lacks 1 feature column.*'group'"):
        clf.predict(X.drop(columns=["group"]))


@pytest.mark.slow
def test_pipeline_grid_search_cross_val_score_and_clone() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    pipe = make_pipeline(FunctionTransformer(np.tanh), MLPClassifier(**FAST))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    search = GridSearchCV(
        MLPClassifier(**FAST), {"hidden_layer_sizes": [(4,), (16,)], "dropout": [0.0]}, cv=3
    )
    search.fit(X, y)
    assert search.best_params_["hidden_layer_sizes"] in [(4,), (16,)]
    assert search.best_estimator_.model_.net.architecture.hidden_layer_sizes in [(4,), (16,)]
    fitted = MLPClassifier(**FAST).fit(X, y)
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params() and not hasattr(twin, "model_")
    np.testing.assert_array_equal(twin.fit(X, y).predict_proba(X), fitted.predict_proba(X))


def test_parameters_reach_the_training_settings() -> None:
    X, y = mixed_frame()
    clf = MLPClassifier(
        hidden_layer_sizes=(8, 8),
        activation="tanh",
        optimizer="sgd",
        learning_rate=0.05,
        batch_size=16,
        max_iter=7,
        n_iter_no_change=None,
        dropout=0.1,
        class_weight={10: 2.0},
        options={"schedule": "cosine", "residual": True},
    ).fit(X, y)
    settings = clf.model_.metadata["settings"]
    assert settings["model"]["hidden"] == [8, 8] and settings["model"]["activation"] == ["tanh"]
    assert settings["model"]["residual"] is True and settings["model"]["dtype"] == "float64"
    train = settings["train"]
    assert (train["optimizer"], train["lr"], train["batch_size"]) == ("sgd", 0.05, 16)
    assert (train["epochs"], train["patience"], train["schedule"]) == (7, None, "cosine")
    assert train["class_weight"] == {"10": 2.0}
    assert clf.n_iter_ == 7 and len(clf.loss_curve_) == 7


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target": "y"}, "takes the data from X and y"),
        ({"epochs": 3}, "set it with max_iter= instead"),
        ({"optimiser": "adam"}, "did you mean 'optimizer'"),
        ({"schedule": "zigzag"}, "choose one of"),
    ],
    ids=["data-option", "parameter", "typo", "bad-value"],
)
def test_bad_options_are_value_errors(options: dict[str, object], message: str) -> None:
    X, y = mixed_frame(40)
    with pytest.raises(ValueError, match=message):
        MLPClassifier(options=options, **FAST).fit(X, y)


def test_multilabel_and_multioutput_regression() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0.5]).astype(int)
    clf = MLPClassifier(**FAST).fit(X, Y)
    assert clf.model_.task == "multilabel"
    assert clf.predict(X).shape == (200, 2) and clf.predict_proba(X).shape == (200, 2)
    assert (clf.predict(X) == Y).mean() > 0.85
    T = np.column_stack([X[:, 0] * 3 + 100, X[:, 1] - X[:, 2]])
    reg = MLPRegressor(**FAST).fit(X, T)
    assert reg.predict(X).shape == (200, 2) and reg.score(X, T) > 0.8
    single = MLPRegressor(**FAST).fit(X, T[:, 0])
    assert single.predict(X).shape == (200,)


def test_sample_weight_changes_the_fit() -> None:
    X, y = mixed_frame()
    weights = np.where(y == 10, 5.0, 1.0)
    plain = MLPClassifier(**FAST).fit(X, y).predict_proba(X)
    weighted = MLPClassifier(**FAST).fit(X, y, sample_weight=weights).predict_proba(X)
    assert weighted[:, 1].mean() > plain[:, 1].mean()  # class 10 weighs more, so more likely


def test_pickle_round_trip_keeps_predictions() -> None:
    X, y = mixed_frame()
    clf = MLPClassifier(**FAST).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_estimator_model_file_is_the_one_mlpcli_predict_reads(
    expression: tuple[pd.DataFrame, pd.Series], tmp_path: Path, runner: object
) -> None:
    from mlpcli.cli import app

    X, y = expression
    clf = MLPClassifier(**FAST).fit(X.drop(columns=["sample_id"]), y)
    path = tmp_path / "model.npz"
    clf.save(path)
    out = tmp_path / "predictions.csv"
    result = runner.invoke(app, ["predict", str(path), str(EXPRESSION), "--out", str(out)])  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    cli = pd.read_csv(out)
    frame = pd.read_csv(EXPRESSION)  # as the CLI reads it (floats as float32)
    assert cli["prediction"].tolist() == clf.predict(frame).tolist()
    proba = cli[[f"proba_{c}" for c in clf.classes_]].to_numpy()
    np.testing.assert_allclose(proba, clf.predict_proba(frame), rtol=0, atol=1e-6)
    loaded = mlpcli.load(path)
    assert isinstance(loaded, MLPClassifier) and loaded.classes_.tolist() == clf.classes_.tolist()
    np.testing.assert_array_equal(loaded.predict_proba(frame), clf.predict_proba(frame))
    assert loaded.get_params()["hidden_layer_sizes"] == (16,)


def test_load_a_cli_trained_model_predicts_like_mlpcli_predict(
    tmp_path: Path, runner: object
) -> None:
    from mlpcli import predicting
    from mlpcli.cli import app

    model = tmp_path / "model.npz"
    args = ["train", str(EXPRESSION), "--target", "subtype", "--id", "sample_id"]
    result = runner.invoke(app, [*args, "--epochs", "5", "--out", str(model), "--quiet"])  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    estimator = mlpcli.load(model)
    assert isinstance(estimator, MLPClassifier)
    frame = pd.read_csv(EXPRESSION)
    expected = predicting.predict_frame(model, frame)
    assert estimator.predict(frame).tolist() == expected["prediction"].tolist()
    proba = expected[[f"proba_{c}" for c in estimator.classes_]].to_numpy()
    np.testing.assert_array_equal(estimator.predict_proba(frame), proba)
    assert estimator.score(frame, frame["subtype"]) > 0.5
    assert estimator.n_iter_ == 5 and estimator.get_params()["max_iter"] == 5
    refit = clone(estimator).fit(frame.drop(columns=["sample_id", "subtype"]), frame["subtype"])
    assert refit.classes_.tolist() == ["basal", "her2", "luminal"]


def test_load_a_regression_model(tmp_path: Path, runner: object) -> None:
    from mlpcli.cli import app

    data = ROOT / "sample_data" / "drug_response.csv"
    model = tmp_path / "reg.npz"
    args = ["train", str(data), "--target", "ic50", "--id", "cell_line", "--epochs", "5"]
    result = runner.invoke(app, [*args, "--out", str(model), "--quiet"])  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    estimator = mlpcli.load(model)
    assert isinstance(estimator, MLPRegressor)
    frame = pd.read_csv(data)
    assert estimator.predict(frame).shape == (len(frame),)


def test_bad_model_file_is_a_value_error(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_text("not a model")
    with pytest.raises(ValueError, match="not a zip archive"):
        mlpcli.load(tmp_path / "bad.npz")
