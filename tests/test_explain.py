"""`mlpcli.explain` on constructed data whose truth is known: only f1 and f3 drive the target."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli import config, metrics, pipeline, trained
from mlpcli import explain as ex
from mlpcli.errors import DataError, UsageError
from mlpcli.explain import permutation
from mlpcli.nn.network import MLP
from mlpcli.preprocessing import Preprocessor
from mlpcli.target_encoding import TargetEncoder

FEATURES = ["f1", "f2", "f3", "f4", "f5", "batch"]
RELEVANT = {"f1", "f3"}
#: Raw scales and offsets, so "per unit of the raw feature" differs from per scaled unit.
SCALES = np.array([1.0, 10.0, 0.5, 3.0, 2.0])
OFFSETS = np.array([0.0, 50.0, 0.0, 5.0, 0.0])


def make_frame(n: int = 400, seed: int = 3) -> pd.DataFrame:
    """y = 2 z1 - 1.5 z3 (f_j = offset_j + scale_j z_j); labels from z1 and z3 only; f2 has
    missing cells (a missing indicator); `batch` is an irrelevant categorical column."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 5))
    frame = pd.DataFrame(Z * SCALES + OFFSETS, columns=FEATURES[:5])
    frame["batch"] = rng.choice(["a", "b", "c"], size=n)
    frame.loc[rng.random(n) < 0.1, "f2"] = np.nan
    frame["y"] = 2 * Z[:, 0] - 1.5 * Z[:, 2] + 0.05 * rng.normal(size=n)
    frame["label"] = np.where(Z[:, 0] + Z[:, 2] > 0, "pos", "neg")
    frame["kind"] = np.select([Z[:, 0] > 0.5, Z[:, 2] > 0], ["a", "b"], "c")
    return frame


TARGETS = {"regression": "y", "binary": "label", "multiclass": "kind"}


def train_model(path: Path, frame_path: Path, target: str, **options: object) -> Path:
    drop = [t for t in TARGETS.values() if t != target]
    values = {"target": [target], "drop": drop, "hidden": "16", "epochs": 150, "seed": 1}
    settings = config.resolve({**values, **options})
    outcome = pipeline.train(str(frame_path), settings)
    pipeline.write_outputs(outcome, str(path))
    return path


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> dict[str, Path]:
    """The data as CSV and one model per task (regression: tanh in float64)."""
    folder = tmp_path_factory.mktemp("explain")
    data = folder / "data.csv"
    frame.to_csv(data, index=False)
    out = {"data": data}
    out["regression"] = train_model(
        folder / "reg.npz", data, "y", activation="tanh", dtype="float64"
    )
    out["binary"] = train_model(folder / "bin.npz", data, "label")
    out["multiclass"] = train_model(folder / "multi.npz", data, "kind")
    out["linear"] = train_model(folder / "lin.npz", data, "y", hidden="", dtype="float64")
    return out


@pytest.fixture(scope="module")
def models(files: dict[str, Path]) -> dict[str, trained.TrainedModel]:
    return {k: trained.load_trained(v) for k, v in files.items() if k != "data"}


def importance(result: ex.Explanation) -> dict[str, float]:
    return dict(zip(result.features, result.importance.tolist(), strict=True))


# --------------------------------------------------------------------------- known truth
@pytest.mark.parametrize("task", list(TARGETS), ids=list(TARGETS))
@pytest.mark.parametrize("method", list(ex.METHODS), ids=list(ex.METHODS))
def test_relevant_features_rank_on_top(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame, method: str, task: str
) -> None:
    result = ex.explain(models[task], frame, ex.ExplainOptions(method=method))
    top = result.to_frame()["feature"].head(2)
    assert set(top) == RELEVANT
    # ... and clearly: the weakest relevant feature beats the strongest irrelevant one 4 times.
    scores = importance(result)
    assert min(scores[f] for f in RELEVANT) > 4 * max(
        v for f, v in scores.items() if f not in RELEVANT
    )


@pytest.mark.parametrize("task", list(TARGETS), ids=list(TARGETS))
def test_irrelevant_permutation_importance_is_within_noise_of_zero(
    models: dict[str, trained.TrainedModel], task: str
) -> None:
    # On new rows, as recommended: on the training rows an overfitted network "uses" noise.
    heldout = make_frame(seed=4)
    result = ex.explain(models[task], heldout, ex.ExplainOptions(repeats=20))
    assert result.repeat_importances is not None
    for j, name in enumerate(result.features):
        if name in RELEVANT:
            continue
        drops = result.repeat_importances[j]
        standard_error = drops.std(ddof=1) / np.sqrt(len(drops))
        # Noise: within 4 standard errors of zero, or below 2% of the metric's range.
        assert abs(drops.mean()) <= max(4 * standard_error, 0.02), name


def test_gradient_recovers_coefficients_in_raw_units(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame
) -> None:
    """y = 2 z1 - 1.5 z3 with z = (f - offset) / scale: dy/df1 = 2, dy/df3 = -1.5 / 0.5 = -3."""
    result = ex.explain(models["regression"], frame, ex.ExplainOptions(method="gradient"))
    assert result.effect is not None
    effect = dict(zip(result.features, result.effect[:, 0].tolist(), strict=True))
    assert effect["f1"] == pytest.approx(2.0, rel=0.1)
    assert effect["f3"] == pytest.approx(-3.0, rel=0.1)
    assert np.isnan(effect["batch"])  # a categorical column has no signed effect


def test_linear_model_gradient_and_attributions_by_hand(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame
) -> None:
    """Without hidden layers f(x) = std (sum_j w_j (x_j - c_j) / s_j + b) + mean, so
    d f / d x_j = std w_j / s_j and a_ij = std w_j (x_ij - median_j) / s_j exactly."""
    model = models["linear"]
    pre, W = model.preprocessor, model.net.parameters()[0][:, 0]
    std = model.encoder.decode(np.ones((1, 1)))[0, 0] - model.encoder.decode(np.zeros((1, 1)))[0, 0]
    slices = pre.input_slices()
    grad = ex.explain(model, frame, ex.ExplainOptions(method="gradient"))
    ig = ex.explain(model, frame, ex.ExplainOptions(method="integrated-gradients", steps=2))
    for name in FEATURES[:5]:
        i, col = pre.input_columns.index(name), slices[name][0]
        k = [c for c in pre.input_columns if pre.input_kinds()[c] == "numeric"].index(name)
        expected = std * W[col] / pre.scales_[k]
        assert grad.effect is not None and ig.effect is not None
        assert grad.effect[i, 0] == pytest.approx(expected, rel=1e-9), name
        x = frame[name].fillna(pre.impute_values_[k]).to_numpy()
        a = std * W[col] * (x - pre.impute_values_[k]) / pre.scales_[k]
        if pre.input_kinds()[name] == "numeric" and len(slices[name]) == 2:
            a = a + std * W[slices[name][1]] * frame[name].isna().to_numpy()
        assert ig.effect[i, 0] == pytest.approx(a.mean(), rel=1e-9, abs=1e-12), name
        assert ig.importance[i] == pytest.approx(np.abs(a).mean(), rel=1e-9), name


@pytest.mark.parametrize("rule", list(ex.RULES), ids=list(ex.RULES))
def test_integrated_gradients_completeness_in_float64(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame, rule: str
) -> None:
    steps = 64 if rule == "gauss-legendre" else 1024  # the trapezoid converges as 1 / steps^2
    options = ex.ExplainOptions(method="integrated-gradients", rule=rule, steps=steps)
    result = ex.explain(models["regression"], frame, options)
    assert result.completeness is not None
    assert result.completeness["max_abs_error"] < 1e-4
    assert result.completeness["max_abs_difference"] > 1.0  # not trivially complete
    assert result.completeness["steps"] == steps and result.completeness["rule"] == rule


def test_completeness_error_is_logged(
    models: dict[str, trained.TrainedModel],
    frame: pd.DataFrame,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="mlpcli"):
        ex.explain(models["binary"], frame, ex.ExplainOptions(method="integrated-gradients"))
    assert any("completeness" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- reproducibility
@pytest.mark.slow
def test_same_seed_gives_identical_results_whatever_n_jobs(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame
) -> None:
    runs = [
        ex.explain(models["binary"], frame, ex.ExplainOptions(repeats=3, seed=7, n_jobs=n_jobs))
        for n_jobs in (1, 2)
    ]
    assert runs[0].repeat_importances is not None and runs[1].repeat_importances is not None
    np.testing.assert_array_equal(runs[0].repeat_importances, runs[1].repeat_importances)
    assert runs[0].features == runs[1].features
    other = ex.explain(models["binary"], frame, ex.ExplainOptions(repeats=3, seed=8))
    assert other.repeat_importances is not None
    assert not np.array_equal(other.repeat_importances, runs[0].repeat_importances)


# --------------------------------------------------------------------------- blocks and groups
class RecordingNet:
    """Stands in for an MLP: records the inputs of each forward pass, outputs zeros."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def forward(self, X: np.ndarray) -> np.ndarray:
        self.inputs.append(X.copy())
        return np.zeros((len(X), 1))


def test_categorical_block_and_missing_indicator_are_permuted_as_a_whole(
    frame: pd.DataFrame,
) -> None:
    pre = Preprocessor(missing_indicators=True).fit(frame, FEATURES)
    X = pre.transform(frame, np.float64)
    slices = pre.input_slices()
    assert len(slices["batch"]) == 3 and len(slices["f2"]) == 2  # one-hot block; value+indicator
    net = RecordingNet()
    scorer = permutation._Scorer(
        metric=metrics.get("r2"),
        encoder=TargetEncoder().fit(frame, ["y"], "regression"),
        y_true=frame[["y"]].to_numpy(),
    )
    cols = np.concatenate([slices["batch"], slices["f2"]])
    permutation._repeat_scores(net, X, cols, scorer, 4, np.random.SeedSequence(0))  # type: ignore[arg-type]
    (stacked,) = net.inputs  # all four repeats in one forward pass
    assert stacked.shape == (4 * len(X), X.shape[1])
    rows = {tuple(r) for r in X[:, cols]}
    for r in range(4):
        block = stacked[r * len(X) : (r + 1) * len(X)]
        # every permuted row is one whole original row of the block: a valid one-hot row with
        # its own value and indicator, never a mix of rows
        assert {tuple(v) for v in block[:, cols]} <= rows
        assert (block[:, slices["batch"]].sum(axis=1) == 1).all()
        assert not np.array_equal(block[:, cols], X[:, cols])
        others = np.setdiff1d(np.arange(X.shape[1]), cols)
        np.testing.assert_array_equal(block[:, others], X[:, others])


def test_results_are_per_input_column(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame
) -> None:
    result = ex.explain(models["binary"], frame, ex.ExplainOptions(repeats=2))
    assert result.features == FEATURES
    assert list(result.to_frame().columns) == ["feature", "importance", "sd", "rank"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("groups.toml", 'signal = ["f1", "f3"]\nnoise = ["f2", "f4"]\n'),
        ("groups.csv", "group,column\nsignal,f1\nnoise,f2\nsignal,f3\nnoise,f4\n"),
        ("groups.tsv", "group\tcolumn\nsignal\tf1\nsignal\tf3\nnoise\tf2\nnoise\tf4\n"),
    ],
    ids=["toml", "csv", "tsv"],
)
def test_group_files(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    groups = ex.read_groups(path)
    assert {k: sorted(v) for k, v in groups.items()} == {
        "signal": ["f1", "f3"],
        "noise": ["f2", "f4"],
    }


@pytest.mark.parametrize("method", ["permutation", "integrated-gradients"])
def test_groups_are_explained_together(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame, method: str
) -> None:
    groups = {"signal": ["f1", "f3"], "noise": ["f2", "f4"]}
    result = ex.explain(models["regression"], frame, ex.ExplainOptions(method, groups=groups))
    assert result.features == ["signal", "noise", "f5", "batch"]
    assert result.columns[0] == ["f1", "f3"]
    assert result.to_frame()["feature"].iloc[0] == "signal"
    if method == "integrated-gradients":  # attributions add up, so a group sums its columns
        single = ex.explain(models["regression"], frame, ex.ExplainOptions(method))
        assert result.effect is not None and single.effect is not None
        pick = [single.features.index(c) for c in ("f1", "f3")]
        assert result.effect[0, 0] == pytest.approx(single.effect[pick, 0].sum(), rel=1e-9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("group,column\nsignal,f1\nsignal,nope\n", "not model inputs: 'nope'"),
        ("name,col\nsignal,f1\n", "header 'group,column'"),
        ("group,column\nsignal\n", "row 2 must hold a group and a column"),
    ],
    ids=["unknown-column", "bad-header", "short-row"],
)
def test_bad_group_files_are_data_errors(
    models: dict[str, trained.TrainedModel],
    frame: pd.DataFrame,
    tmp_path: Path,
    text: str,
    message: str,
) -> None:
    path = tmp_path / "groups.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        groups = ex.read_groups(path)
        ex.explain(models["binary"], frame, ex.ExplainOptions(groups=groups))


# --------------------------------------------------------------------------- outputs and metrics
def test_lower_is_better_metric_keeps_positive_means_important(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame
) -> None:
    result = ex.explain(models["regression"], frame, ex.ExplainOptions(metric="rmse", repeats=3))
    assert result.metric == "rmse" and result.greater_is_better is False
    assert min(importance(result)[f] for f in RELEVANT) > 0.5


def test_per_class_columns_for_multiclass(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame
) -> None:
    result = ex.explain(models["multiclass"], frame, ex.ExplainOptions(method="gradient"))
    assert result.outputs == ["a", "b", "c"]
    table = result.to_frame()
    for label in result.outputs:
        assert f"importance_{label}" in table and f"effect_{label}" in table
    assert result.per_output is not None
    np.testing.assert_allclose(result.importance, result.per_output.mean(axis=1))


def test_missing_targets_are_dropped_with_a_warning(
    models: dict[str, trained.TrainedModel],
    frame: pd.DataFrame,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gappy = frame.copy()
    gappy.loc[:4, "label"] = np.nan
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        result = ex.explain(models["binary"], gappy, ex.ExplainOptions(repeats=2))
    assert result.n_dropped == 5 and result.n_rows == len(frame) - 5
    assert "Dropped 5 row(s)" in caplog.text


def test_permutation_needs_the_target_but_gradients_do_not(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame
) -> None:
    unlabelled = frame.drop(columns=["label"])
    with pytest.raises(DataError, match="needs the target column"):
        ex.explain(models["binary"], unlabelled, ex.ExplainOptions())
    result = ex.explain(models["binary"], unlabelled, ex.ExplainOptions(method="gradient"))
    assert result.n_rows == len(frame)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ex.ExplainOptions(method="shap"), "Unknown method 'shap'; choose one of"),
        (ex.ExplainOptions(method="gradient", metric="accuracy"), "--metric applies to"),
        (ex.ExplainOptions(method="gradient", groups={"g": ["f1"]}), "--group-features"),
        (ex.ExplainOptions(steps=8), "--steps applies to --method integrated-gradients"),
        (ex.ExplainOptions(repeats=0), "--repeats must be at least 1"),
        (ex.ExplainOptions(metric="r2"), "--metric 'r2' does not apply to a binary model"),
        (ex.ExplainOptions(n_jobs=0), "--n-jobs"),
        (ex.ExplainOptions("integrated-gradients", rule="simpson"), "choose one of"),
        (ex.ExplainOptions("gradient", backend="dask"), "--backend and --scheduler apply to"),
        (ex.ExplainOptions(backend="spark"), "--backend got 'spark'; choose one of: local, dask"),
        (ex.ExplainOptions(backend="dask"), "--backend dask needs --scheduler ADDRESS"),
    ],
    ids=[
        *("method", "metric", "groups", "steps", "repeats", "metric-task", "n-jobs", "rule"),
        *("backend-method", "backend", "no-scheduler"),
    ],
)
def test_bad_options_are_usage_errors(
    models: dict[str, trained.TrainedModel],
    frame: pd.DataFrame,
    options: ex.ExplainOptions,
    message: str,
) -> None:
    with pytest.raises(UsageError, match=message):
        ex.explain(models["binary"], frame, options)


def test_baseline_table_must_be_one_row(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame
) -> None:
    options = ex.ExplainOptions("integrated-gradients", baseline=frame.iloc[:2])
    with pytest.raises(UsageError, match="exactly one row"):
        ex.explain(models["regression"], frame, options)
    options = ex.ExplainOptions("integrated-gradients", baseline=frame.iloc[[0]])
    result = ex.explain(models["regression"], frame, options)
    assert result.completeness is not None and result.completeness["max_abs_error"] < 1e-4
    row = dict(zip(result.features, np.abs(result.effect[:, 0]).tolist(), strict=True))  # type: ignore[index]
    assert result.baseline is not None and result.baseline["description"] == "the row of --baseline"
    assert row["f1"] > 0.1


def test_json_document_is_stable_and_finite(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame
) -> None:
    import json

    result = ex.explain(models["binary"], frame, ex.ExplainOptions(repeats=2))
    result.inputs = {"m.npz": "abc"}
    doc = json.loads(result.to_json(command=["mlpcli", "explain"]))
    assert list(doc)[:4] == ["method", "task", "units", "metric"]
    assert doc["metric"] == "accuracy" and doc["repeats"] == 2 and doc["seed"] == 0
    importances = [f["importance"] for f in doc["features"]]
    assert importances == sorted(importances, reverse=True)
    # Competition ranks: 1 + the number of strictly more important features (ties share).
    assert [f["rank"] for f in doc["features"]] == [
        1 + sum(other > mine for other in importances) for mine in importances
    ]
    assert doc["provenance"]["inputs"] == [{"path": "m.npz", "sha256": "abc"}]
    assert doc["provenance"]["command"] == ["mlpcli", "explain"]


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t")], ids=["csv", "tsv"])
def test_table_written_by_extension(
    models: dict[str, trained.TrainedModel],
    frame: pd.DataFrame,
    tmp_path: Path,
    suffix: str,
    sep: str,
) -> None:
    result = ex.explain(models["binary"], frame, ex.ExplainOptions(repeats=2))
    path = tmp_path / f"imp{suffix}"
    ex.write_table(result, str(path))
    back = pd.read_csv(path, sep=sep)
    assert list(back.columns) == ["feature", "importance", "sd", "rank"]
    assert list(back["rank"]) == [
        1 + sum(other > mine for other in back["importance"]) for mine in back["importance"]
    ]
    assert len(back) == len(FEATURES)


def test_plot_without_matplotlib_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(UsageError, match=r'pip install "\.\[plot\]" in the mlpcli checkout'):
        ex.check_plot("chart.png")


# --------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize(
    "kw",
    [
        {"hidden_layer_sizes": (), "loss": "bce"},
        {"hidden_layer_sizes": (5, 4), "n_outputs": 3, "loss": "ce", "activation": "tanh"},
        {
            "hidden_layer_sizes": (6, 6),
            "n_outputs": 2,
            "activation": "gelu",
            "batchnorm": True,
            "residual": True,
            "dropout": 0.3,
        },
    ],
    ids=["linear", "softmax", "bn-residual-dropout"],
)
def test_input_gradient_matches_central_differences(
    rng: np.random.Generator, central_difference: Callable[..., np.ndarray], kw: dict
) -> None:
    net = MLP(4, dtype="float64", seed=1, **kw)
    X = rng.normal(size=(6, 4))
    net.loss_and_gradients(X, rng.random((6, net.architecture.n_outputs)))  # BN statistics
    before = net.flat_grads.copy()
    V = rng.normal(size=(6, net.architecture.n_outputs))
    analytic = net.input_gradient(X, V)
    numeric = central_difference(lambda: float((net.forward(X) * V).sum()), X)
    np.testing.assert_allclose(analytic, numeric, atol=1e-7)
    np.testing.assert_array_equal(net.flat_grads, before)  # training gradients untouched


@pytest.mark.parametrize("scale", ["standard", "minmax", "robust", "none"])
@pytest.mark.parametrize("log1p", [False, True], ids=["raw", "log1p"])
def test_encoding_derivatives_match_finite_differences(scale: str, log1p: bool) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.gamma(2.0, 3.0, 50), "b": rng.gamma(1.0, 1.0, 50)})
    frame.loc[[3, 7], "a"] = np.nan
    frame["c"] = rng.choice(["x", "y"], 50)
    pre = Preprocessor(scale=scale, log1p=log1p, missing_indicators=True).fit(
        frame, ["a", "b", "c"]
    )
    D = pre.encoding_derivatives(frame)
    eps = 1e-6
    for name in ("a", "b"):
        up, down = frame.copy(), frame.copy()
        up[name] += eps
        down[name] -= eps
        col = pre.input_slices()[name][0]
        numeric = (pre.transform(up, np.float64) - pre.transform(down, np.float64))[:, col] / (
            2 * eps
        )
        present = frame[name].notna().to_numpy()
        np.testing.assert_allclose(D[present, col], numeric[present], rtol=1e-6)
        assert np.isnan(D[~present, col]).all()
    others = [i for i in range(pre.n_features_out) if i not in (0, 2)]
    assert (D[:, others] == 1.0).all()  # indicator and one-hot columns: per 0/1 unit


@pytest.mark.parametrize(("impute", "at_median"), [("median", True), ("mean", False)])
def test_reference_row(impute: str, at_median: bool) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 10.0, np.nan], "c": ["x", "y", "z", "x"]})
    pre = Preprocessor(impute=impute, scale="standard").fit(frame, ["a", "c"])
    row = pre.reference_row()
    center, spread = pre.centers_[0], pre.scales_[0]
    expected = (2.0 - center) / spread if at_median else 0.0
    assert row[0] == pytest.approx(expected)
    np.testing.assert_allclose(row[1:], [1 / 3, 1 / 3, 1 / 3])


@pytest.mark.slow
def test_plot_draws_a_ranked_bar_chart(
    models: dict[str, trained.TrainedModel], frame: pd.DataFrame, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    result = ex.explain(models["binary"], frame, ex.ExplainOptions(repeats=2))
    path = tmp_path / "chart.png"
    ex.check_plot(str(path))
    ex.plot(result, str(path), top=4)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UsageError, match="unknown image format 'xyz'"):
        ex.check_plot(str(tmp_path / "chart.xyz"))
