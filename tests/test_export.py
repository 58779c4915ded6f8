"""`mlpcli export --format onnx`: onnxruntime on the exported graph gives what `mlpcli predict`
gives, to 1e-5, for every task, every activation and layer kind, and the stored preprocessing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli import data, describe, export, pipeline, predicting, trained
from mlpcli.config import resolve
from mlpcli.nn import activations
from mlpcli.nn.network import MLP
from mlpcli.preprocessing import Preprocessor

ort = pytest.importorskip("onnxruntime", reason='the onnx extra is missing: pip install ".[onnx]"')
pytest.importorskip("onnx", reason='the onnx extra is missing: pip install ".[onnx]"')

ROOT = Path(__file__).resolve().parents[1]
EXPRESSION = ROOT / "sample_data" / "expression.csv"
DRUGS = ROOT / "sample_data" / "drug_response.csv"
TOLERANCE = 1e-5


def _read(path: Path, ids: list[str]) -> pd.DataFrame:
    """The table exactly as `mlpcli train` and `predict` read it (float32 columns, NA)."""
    return data.read_table(path, text_columns=ids).frame


def _expression() -> pd.DataFrame:
    frame = _read(EXPRESSION, ["sample_id"])
    frame["basal"] = (frame["subtype"] == "basal").astype(int)
    frame["luminal"] = (frame["subtype"] == "luminal").astype(int)
    return frame


def _binary() -> pd.DataFrame:
    frame = _read(EXPRESSION, ["sample_id"])
    return frame[frame["subtype"] != "her2"].reset_index(drop=True)


def _drugs() -> pd.DataFrame:
    frame = _read(DRUGS, ["cell_line"])
    frame["ic50_rank"] = frame["ic50"].rank()
    return frame


#: task -> (table, its target columns, columns that are neither target nor feature).
TASKS: dict[str, tuple[Callable[[], pd.DataFrame], list[str], list[str]]] = {
    "binary": (_binary, ["subtype"], ["sample_id"]),
    "multiclass": (_expression, ["subtype"], ["sample_id", "basal", "luminal"]),
    "multilabel": (_expression, ["basal", "luminal"], ["sample_id", "subtype"]),
    "regression": (_drugs, ["ic50"], ["cell_line", "ic50_rank"]),
    "multi-output": (_drugs, ["ic50", "ic50_rank"], ["cell_line"]),
}


def train(task: str, **options: object) -> tuple[trained.TrainedModel, pd.DataFrame]:
    """A model trained as `mlpcli train` trains it (3 epochs), and its table."""
    make, targets, others = TASKS[task]
    frame = make()
    task_name = "regression" if task == "multi-output" else task
    values = {"target": targets, "drop": others, "task": task_name, "epochs": 3, **options}
    values.setdefault("threads", 1)  # one BLAS thread: 6x faster than two on a loaded machine
    values.setdefault("hidden", "16,8")
    values.setdefault("preset", "classic")  # the lecture's MLP, whatever the default preset
    outcome = pipeline.train_frame(frame, resolve(values))
    model = trained.trained_from_contents(outcome.metadata, outcome.arrays)
    return model, frame


def with_activation(model: trained.TrainedModel, name: str) -> trained.TrainedModel:
    """The same weights under another hidden activation: every registered one, also those the
    command line does not offer yet."""
    arch = dataclasses.replace(
        model.net.architecture, activation=(name,) * len(model.net.architecture.activation)
    )
    net = MLP.from_architecture(arch, seed=0)
    net.load_state_arrays(model.net.state_arrays())
    metadata = {**model.metadata, "architecture": arch.to_dict()}
    return dataclasses.replace(model, net=net, metadata=metadata)


def with_preprocessing(
    model: trained.TrainedModel, frame: pd.DataFrame, **options: object
) -> trained.TrainedModel:
    """The same network behind a preprocessor refitted with other options (same columns)."""
    pre = model.preprocessor
    kinds = pre.input_kinds()
    refit = Preprocessor(**options).fit(  # type: ignore[arg-type]
        frame, pre.input_columns, [c for c, k in kinds.items() if k == "categorical"]
    )
    assert refit.n_features_out == pre.n_features_out
    meta, _ = refit.to_state()
    return dataclasses.replace(
        model, preprocessor=refit, metadata={**model.metadata, "preprocessing": meta}
    )


def differences(model: trained.TrainedModel, frame: pd.DataFrame) -> dict[str, float]:
    """Max |onnxruntime - mlpcli predict| per output, after checking the labels are equal; an
    ensemble's `spread` against `predict --spread`."""
    ensemble = getattr(model.net, "config", None) is not None and model.net.config.n_members > 1  # type: ignore[attr-defined]
    options = predicting.PredictOptions(spread=ensemble)
    expected = predicting.predict_frame(model, frame, options)
    session = ort.InferenceSession(
        export.onnx_model(model).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, export.onnx_inputs(model, frame)), strict=True))
    assert ("spread" in got) == ensemble
    encoder = model.encoder
    targets = encoder.targets
    columns = ["prediction"] if len(targets) == 1 else [f"prediction_{t}" for t in targets]
    if encoder.task == "regression":
        value = expected[columns].to_numpy(np.float64)
        scale = np.maximum(1.0, np.abs(value))  # relative in large units, absolute near zero
        found = {"prediction": float(np.max(np.abs(got["prediction"] - value) / scale))}
        spread_columns = [c.replace("prediction", "spread") for c in columns]
    else:
        label = got["label"].reshape(len(frame), -1)
        assert (label == expected[columns].to_numpy(dtype=str)).all()
        proba = expected[[f"proba_{label}" for label in encoder.labels]].to_numpy(np.float64)
        found = {"probabilities": float(np.max(np.abs(got["probabilities"] - proba)))}
        spread_columns = [f"spread_{label}" for label in encoder.labels]
        scale = 1.0
    if ensemble:
        spread = expected[spread_columns].to_numpy(np.float64)
        found["spread"] = float(np.max(np.abs(got["spread"] - spread) / scale))
    return found


def assert_parity(model: trained.TrainedModel, frame: pd.DataFrame) -> None:
    for output, difference in differences(model, frame).items():
        assert difference <= TOLERANCE, (output, difference)


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task(task: str) -> None:
    assert_parity(*train(task))


@pytest.fixture(scope="module")
def base() -> dict[str, tuple[trained.TrainedModel, pd.DataFrame]]:
    models = {task: train(task) for task in ("multiclass", "regression")}
    models["float64"] = train("multiclass", dtype="float64")
    return models


@pytest.mark.parametrize("name", activations.HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("task", ["multiclass", "regression", "float64"])
def test_every_hidden_activation(
    base: dict[str, tuple[trained.TrainedModel, pd.DataFrame]], task: str, name: str
) -> None:
    model, frame = base[task]
    assert_parity(with_activation(model, name), frame)


LAYERS = {
    "batchnorm": {"batchnorm": True},
    "dropout": {"dropout": 0.2},
    "residual": {"hidden": "16,16,16", "residual": True},
    "all-together": {"hidden": "8,8", "residual": True, "batchnorm": True, "dropout": 0.1},
    "no-hidden-layer": {"hidden": ""},
    "per-layer-activations": {"activation": "tanh,elu", "leaky_slope": 0.2},
    "leaky-slope": {"activation": "leaky_relu", "leaky_slope": 0.3},
    "float64": {"dtype": "float64"},
}


@pytest.mark.parametrize("options", list(LAYERS.values()), ids=list(LAYERS))
@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_every_layer_kind(task: str, options: dict[str, object]) -> None:
    assert_parity(*train(task, **options))


@pytest.mark.parametrize("output", ["identity", "relu", "softplus"])
def test_regression_output_activations(output: str) -> None:
    assert_parity(*train("multi-output", output_activation=output))


PREPROCESSING = {
    "minmax": {"scale": "minmax"},
    "robust": {"scale": "robust"},
    "none": {"scale": "none", "impute": "mean"},
    "log1p-constant": {"log1p": True, "impute": "constant", "fill_value": -1.0},
    "indicators": {"missing_indicators": True},
    "robust-range-smooth-clip": {"scale": "robust_range", "clip": "smooth"},
}


@pytest.mark.parametrize("options", list(PREPROCESSING.values()), ids=list(PREPROCESSING))
def test_stored_preprocessing(
    base: dict[str, tuple[trained.TrainedModel, pd.DataFrame]], options: dict[str, object]
) -> None:
    model, frame = base["regression"]  # numeric columns with missing cells and a text column
    if options.get("missing_indicators"):
        model, frame = train("regression", missing_indicators=True)
    else:
        model = with_preprocessing(model, frame, **options)
    assert_parity(model, frame)


def test_unseen_and_missing_levels(
    base: dict[str, tuple[trained.TrainedModel, pd.DataFrame]],
) -> None:
    model, frame = base["regression"]
    changed = frame.copy()
    changed.loc[:9, "tissue"] = "brain-never-seen"  # all zeros in both
    changed.loc[10:19, "tissue"] = np.nan
    assert_parity(model, changed)


def test_cli_export_matches_cli_predict(runner: object, tmp_path: Path) -> None:
    from mlpcli.cli import app

    invoke = runner.invoke  # type: ignore[attr-defined]
    model = tmp_path / "model.npz"
    train_args = ["train", str(EXPRESSION), "--target", "subtype", "--id", "sample_id"]
    assert invoke(app, [*train_args, "--epochs", "3", "--out", str(model), "-q"]).exit_code == 0
    onnx_file, predictions = tmp_path / "model.onnx", tmp_path / "predictions.csv"
    done = invoke(app, ["export", str(model), "--format", "onnx", "--out", str(onnx_file)])
    assert done.exit_code == 0, done.output
    assert f"Wrote {onnx_file} (onnx, 61 input column(s)" in done.stderr
    predict = ["predict", str(model), str(EXPRESSION), "--out", str(predictions)]
    assert invoke(app, predict).exit_code == 0
    expected = pd.read_csv(predictions)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    frame = _read(EXPRESSION, ["sample_id"])
    loaded = trained.load_trained(model)
    label, proba = session.run(["label", "probabilities"], export.onnx_inputs(loaded, frame))
    assert label.tolist() == expected["prediction"].tolist()
    columns = [f"proba_{c}" for c in loaded.encoder.labels]
    assert np.max(np.abs(proba - expected[columns].to_numpy())) <= TOLERANCE
    props = {p.key: p.value for p in __import__("onnx").load(str(onnx_file)).metadata_props}
    assert props["task"] == "multiclass" and '"GENE001"' in props["numeric_columns"]


def test_inspect_lists_export_formats(tiny_model: Path) -> None:
    document = describe.describe_model(tiny_model)
    assert document["export_formats"] == {"onnx": "yes"}


def test_unsupported_model_is_refused_before_writing(tmp_path: Path, tiny_model: Path) -> None:
    meta = {"architecture": {"activation": ["relu"], "output_activation": "swish"}}
    assert export.Onnx().unsupported(meta) == "activation(s) swish have no ONNX form here"
    with pytest.raises(Exception, match="Unknown export format 'tflite'; choose one of: onnx"):
        export.export_file(tiny_model, "tflite", tmp_path / "m.x")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("task", "options"),
    [
        ("binary", {"calibrate": True, "threshold": "auto"}),
        ("binary", {"threshold": 0.3}),
        ("multiclass", {"calibrate": True}),
    ],
    ids=["binary-calibrated-auto-threshold", "binary-fixed-threshold", "multiclass-calibrated"],
)
def test_calibration_and_threshold_are_in_the_graph(task: str, options: dict[str, object]) -> None:
    """The temperature (folded into the output layer) and the stored threshold reach the ONNX
    graph: labels and probabilities agree with `mlpcli predict`."""
    model, frame = train(task, **options)
    assert (model.temperature is not None) == bool(options.get("calibrate"))
    assert model.threshold != 0.5 or task == "multiclass"
    assert_parity(model, frame)


@pytest.mark.parametrize("high_cardinality", ["frequency", "onehot"])
def test_high_cardinality_encodings(high_cardinality: str) -> None:
    """tissue has 5 levels and missing cells: over --max-levels 4 it is frequency-encoded, or
    one-hot with its least frequent levels pooled into '__other__' (unseen levels go there)."""
    model, frame = train("regression", max_levels=4, high_cardinality=high_cardinality)
    kind = {"frequency": "frequency", "onehot": "categorical"}[high_cardinality]
    assert model.preprocessor.input_kinds()["tissue"] == kind
    changed = frame.copy()
    changed.loc[:9, "tissue"] = "brain-never-seen"
    changed.loc[10:19, "tissue"] = np.nan
    assert_parity(model, changed)


# --------------------------------------------------------------------------- the recipe
#: A recipe small enough to train in a fraction of a second (`--preset realmlp_td`).
RECIPE = {"preset": "realmlp_td", "hidden": "8,8", "epochs": 2, "batch_size": 64, "threads": 1}
#: Ensemble layouts: one network, K packed members, K BatchEnsemble members.
MEMBERS = {
    "single": {},
    "packed-3": {"ensemble": 3},
    "batch-3": {"ensemble": 3, "ensemble_kind": "batch"},
}
SITES = 12  # levels of the added column: over the recipe's one-hot limit, so it is embedded


def with_sites(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with a `site` column of many levels (two of them rare: pooled into
    '__other__'), which the recipe encodes with a learned embedding."""
    rng = np.random.default_rng(0)
    sites = np.array([f"site{i:02d}" for i in rng.integers(0, SITES, len(frame))], dtype=object)
    sites[:3] = "rare-a"
    sites[3:6] = "rare-b"
    return frame.assign(site=sites)


def train_recipe(task: str, **options: object) -> tuple[trained.TrainedModel, pd.DataFrame]:
    """A recipe model on the task's table with the many-level `site` column, and the table
    with unseen and missing sites (the embedding's '__other__' row and its missing level)."""
    make, targets, others = TASKS[task]
    frame = with_sites(make())
    task_name = "regression" if task == "multi-output" else task
    values = {"target": targets, "drop": others, "task": task_name, **RECIPE, **options}
    outcome = pipeline.train_frame(frame, resolve(values))
    model = trained.trained_from_contents(outcome.metadata, outcome.arrays)
    changed = frame.copy()
    changed.loc[:9, "site"] = "site-never-seen"
    changed.loc[10:19, "site"] = np.nan
    return model, changed


def kinds(model: trained.TrainedModel) -> list[str]:
    return [layer.kind for layer in model.net.layers]  # type: ignore[attr-defined]


@pytest.mark.parametrize("members", list(MEMBERS))
@pytest.mark.parametrize("embedding", ["none", "pbld", "ple"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_recipe_network(task: str, embedding: str, members: str) -> None:
    """Every numeric embedding x ensemble layout x task, each with the categorical embedding."""
    model, frame = train_recipe(task, embedding=embedding, **MEMBERS[members])
    layers = kinds(model)
    assert "cat_embedding" in layers and "scale" in layers and "act" in layers
    assert (embedding in layers) == (embedding != "none")
    assert ("be_dense" in layers) == (members == "batch-3")
    assert model.net.config.n_members == (1 if members == "single" else 3)  # type: ignore[attr-defined]
    assert_parity(model, frame)


@pytest.mark.parametrize(
    ("task", "options"),
    [
        ("multilabel", {"ensemble": 2}),
        ("multi-output", {"ensemble": 2, "embedding": "ple"}),
        ("binary", {"calibrate": True, "threshold": "auto"}),
        ("multiclass", {"calibrate": True, "dtype": "float64"}),
        ("regression", {"activation": "gelu", "ensemble": 2, "ensemble_kind": "batch"}),
        ("multiclass", {"ensemble": 3, "bag": True}),
    ],
    ids=[
        "multilabel",
        "multi-output",
        "binary-calibrated-threshold",
        "float64-calibrated",
        "gelu",
        "bagged",
    ],
)
def test_recipe_tasks_calibration_and_threshold(task: str, options: dict[str, object]) -> None:
    """The recipe's other tasks, a folded temperature, a stored threshold, float64 and a
    non-default activation reach the graph too."""
    model, frame = train_recipe(task, **options)
    assert (model.temperature is not None) == bool(options.get("calibrate"))
    assert model.threshold != 0.5 or options.get("threshold") is None
    assert_parity(model, frame)


def test_recipe_regression_clamp() -> None:
    """Predictions clip to the training targets' range per output (narrowed here, so the clamp
    decides most rows): the graph clips as `predict` does."""
    model, frame = train_recipe("multi-output", ensemble=2)
    net: object = model.net
    assert net.config.clamp_output  # type: ignore[attr-defined]
    P = model.predict_outputs(frame)
    low, high = np.quantile(P, [0.3, 0.7], axis=0)
    net.output_low[...], net.output_high[...] = low, high  # type: ignore[attr-defined]
    clamped = model.predict_outputs(frame)
    assert (clamped != P).mean() > 0.3
    assert_parity(model, frame)


def test_recipe_inspect_and_unsupported_layer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`inspect` lists ONNX for a recipe model; a layer kind without a builder is named."""
    model, _ = train_recipe("binary", embedding="ple")
    assert export.Onnx().unsupported(model.metadata) is None
    monkeypatch.delitem(export.RECIPE_LAYERS, "ple")
    assert export.Onnx().unsupported(model.metadata) == (
        "recipe layer(s) ple have no ONNX form here"
    )


def test_cli_exports_a_recipe_ensemble(runner: object, tmp_path: Path) -> None:
    """`mlpcli train --preset realmlp_td --ensemble 2`, `export`, and onnxruntime on the file
    gives `mlpcli predict --spread`'s labels, probabilities and spreads; `inspect` says it can
    be exported."""
    from mlpcli.cli import app

    invoke = runner.invoke  # type: ignore[attr-defined]
    model = tmp_path / "model.npz"
    train_args = ["train", str(EXPRESSION), "--target", "subtype", "--id", "sample_id"]
    recipe = ["--preset", "realmlp_td", "--hidden", "8", "--epochs", "2", "--ensemble", "2"]
    assert invoke(app, [*train_args, *recipe, "--out", str(model), "-q"]).exit_code == 0
    shown = invoke(app, ["inspect", str(model)])
    assert "onnx (yes)" in shown.output and "no ONNX form" not in shown.output
    onnx_file, predictions = tmp_path / "model.onnx", tmp_path / "predictions.csv"
    done = invoke(app, ["export", str(model), "--format", "onnx", "--out", str(onnx_file)])
    assert done.exit_code == 0, done.output
    predict = ["predict", str(model), str(EXPRESSION), "--spread", "--out", str(predictions)]
    assert invoke(app, predict).exit_code == 0
    expected = pd.read_csv(predictions)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    loaded = trained.load_trained(model)
    feeds = export.onnx_inputs(loaded, _read(EXPRESSION, ["sample_id"]))
    label, proba, spread = session.run(["label", "probabilities", "spread"], feeds)
    assert label.tolist() == expected["prediction"].tolist()
    for name, got in (("proba", proba), ("spread", spread)):
        columns = [f"{name}_{c}" for c in loaded.encoder.labels]
        assert np.max(np.abs(got - expected[columns].to_numpy())) <= TOLERANCE


def test_auto_preset_model() -> None:
    """`--preset auto` saves the winner as its own preset saves it; either kind exports."""
    model, frame = train("binary", preset="auto", hidden="8,8", epochs=2, batch_size=64)
    assert model.metadata["auto"]["chosen"] in ("classic", "realmlp_td")
    assert_parity(model, frame)


def test_recipe_without_numeric_columns() -> None:
    """No numeric column: the periodic embedding passes its inputs on; only the categorical
    embedding (12 levels) and the one-hot column remain."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "grade": rng.choice(["g1", "g2", "g3"], 300),
            "clinic": [f"clinic{i}" for i in rng.integers(0, SITES, 300)],
            "outcome": rng.choice(["relapse", "remission"], 300),
        }
    )
    values = {"target": ["outcome"], "task": "binary", **RECIPE}
    outcome = pipeline.train_frame(frame, resolve(values))
    model = trained.trained_from_contents(outcome.metadata, outcome.arrays)
    assert kinds(model)[:2] == ["pbld", "cat_embedding"]
    assert_parity(model, frame)


@pytest.mark.slow
def test_ensemble_groups_model(runner: object, tmp_path: Path) -> None:
    """`--ensemble-groups` stacks its groups into one K-member model file: it exports as one
    (about 1.3 s of CPU: two trainings through the executor)."""
    from mlpcli.cli import app

    model = tmp_path / "model.npz"
    args = ["train", str(EXPRESSION), "--target", "subtype", "--id", "sample_id", "-q"]
    recipe = ["--preset", "realmlp_td", "--hidden", "8", "--epochs", "2", "--ensemble", "4"]
    groups = ["--ensemble-groups", "2", "--n-jobs", "1", "--out", str(model)]
    done = runner.invoke(app, [*args, *recipe, *groups])  # type: ignore[attr-defined]
    assert done.exit_code == 0, done.output
    loaded = trained.load_trained(model)
    assert len(loaded.metadata["training"]["groups"]) == 2
    assert_parity(loaded, _read(EXPRESSION, ["sample_id"]))
