"""`--preset`: classic reproduces the lecture's MLP bit for bit; the recipe preset trains,
saves, loads and predicts (with `--spread` for ensembles) through every command."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli import config, describe, modelfile
from mlpcli.errors import UsageError
from mlpcli.pipeline import train_frame, write_outputs
from mlpcli.predicting import PredictOptions, predict_frame
from mlpcli.trained import load_trained

pytestmark = pytest.mark.usefixtures("plain_terminal")

#: A few recipe epochs on a tiny network: enough to exercise every piece quickly.
TINY_RECIPE = {"preset": "realmlp_td", "hidden": "8,8", "epochs": 2, "batch_size": 16}


def _table(n: int = 60, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["g"] = np.where(rng.random(n) > 0.5, "u", "v")
    frame["y"] = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    return frame


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def _train(frame: pd.DataFrame, **values: object):  # type: ignore[no-untyped-def]
    return train_frame(frame, config.resolve({"target": "y", "seed": 1, **values}))


def test_classic_preset_is_bit_identical_to_the_defaults() -> None:
    plain = _train(_table(), epochs=3, hidden="5")
    classic = _train(_table(), epochs=3, hidden="5", preset="classic")
    assert set(plain.arrays) == set(classic.arrays)
    for name, array in plain.arrays.items():
        assert array.dtype == classic.arrays[name].dtype, name
        assert array.tobytes() == classic.arrays[name].tobytes(), name
    assert "recipe" not in classic.metadata


#: The run of `test_classic_preset_is_bit_identical_to_the_defaults` at d4ee33c, before presets
#: existed, per OpenBLAS kernel (threadpoolctl's "architecture"): each kernel sums in its own
#: order, so the last bits differ between kernels, not between runs. SkylakeX: d4ee33c's
#: `mlpcli train` and `--preset classic` gave byte-identical weights on 2 December 2026.
PRE_PRESET_DIGESTS = {
    "Haswell": "fb99dba7c9d1088833050329ca6b5f5e52ee5edf16ac59f363df620bc7d2cc2c",
    "SkylakeX": "75a7cf276e9643f4a9486236562e66c25e0197ce6ffc6473086e11bd5f32eccf",
}


def _blas_kernel() -> str | None:
    from threadpoolctl import threadpool_info

    kernels = {i.get("architecture") for i in threadpool_info() if i["internal_api"] == "openblas"}
    return kernels.pop() if len(kernels) == 1 else None


def test_classic_preset_reproduces_the_models_from_before_presets() -> None:
    kernel = _blas_kernel()
    if kernel not in PRE_PRESET_DIGESTS:
        pytest.skip(f"no digest recorded for this BLAS (OpenBLAS kernel {kernel!r})")
    classic = _train(_table(), epochs=3, hidden="5", preset="classic")
    assert _digest(classic.arrays) == PRE_PRESET_DIGESTS[kernel]


def test_a_preset_sets_its_values_and_given_options_override_them() -> None:
    s = config.resolve({"preset": "realmlp_td", "epochs": "7"})
    assert s.train.epochs == 7
    assert s.model.hidden == (256, 256, 256)
    assert (s.train.optimizer, s.preprocess.scale, s.preprocess.clip) == (
        "adamw",
        "robust_range",
        "smooth",
    )
    assert s.train.patience is None and s.model.embedding == "pbld"
    assert config.resolve({"preset": "classic"}) == config.Settings()
    # A later change of other options keeps the preset's values.
    assert s.replace(lr=0.01).model.hidden == (256, 256, 256)


def test_cli_preset_comes_before_the_config_file(tmp_path: Path) -> None:
    from mlpcli.cli.common import resolve_settings

    path = tmp_path / "c.toml"
    path.write_text("epochs = 9\nhidden = '16'\n")
    s = resolve_settings({"preset": "realmlp_td", "dropout": "0.3"}, str(path))
    assert (s.train.epochs, s.model.hidden, s.model.dropout) == (9, (16,), 0.3)
    assert s.preprocess.clip == "smooth"


def test_an_ensemble_of_the_recipe_has_half_width_members_unless_hidden_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--ensemble K >= 2 without --hidden: members of 3 x 128 (config.ENSEMBLE_HIDDEN); a
    --hidden on the command line or in the config file wins, one network keeps 3 x 256."""
    from mlpcli.cli.common import resolve_settings

    def hidden(options: dict[str, object], text: str | None = None) -> tuple[int, ...]:
        path = None
        if text is not None:
            path = tmp_path / "c.toml"
            path.write_text(text)
        options = {"preset": "realmlp_td", "hidden": None, **options}
        return resolve_settings(options, None if path is None else str(path)).model.hidden

    narrow, wide = (128, 128, 128), (256, 256, 256)
    assert hidden({"ensemble": 5}) == narrow
    assert hidden({"ensemble": 2, "epochs": 3}) == narrow
    assert hidden({"ensemble": 1}) == wide and hidden({}) == wide
    assert hidden({"ensemble": 5, "hidden": "256,256,256"}) == wide  # given: it wins
    assert hidden({"ensemble": 5, "hidden": "16"}) == (16,)
    assert hidden({}, "ensemble = 5\n") == narrow  # the ensemble from the config file
    assert hidden({"ensemble": 5}, "hidden = '256,256,256'\n") == wide  # the file's wins
    assert hidden({"ensemble": 5}, "[model]\nhidden = '256,256,256'\n") == wide
    assert config.resolve({"preset": "realmlp_td", "ensemble": 3}).model.hidden == narrow
    # a resumed full-width ensemble (trained before this default) keeps its width
    old = config.resolve({"preset": "realmlp_td", "ensemble": 5, "hidden": "256,256,256"})
    assert config.resolve({"epochs": 4}, base=old).model.hidden == wide
    # the preset from $MLPCLI_PRESET, no --preset
    monkeypatch.setenv(config.PRESET_ENV, "realmlp_td")
    assert resolve_settings({"ensemble": 5, "hidden": None}, None).model.hidden == narrow


def test_cli_ensemble_default_width_is_in_the_model_and_deterministic(
    runner: object, cohort_csv: Path, tmp_path: Path
) -> None:
    """`train --preset realmlp_td --ensemble 2` (no --hidden) twice with a seed: the same
    model, whose file and `inspect` show the members' 3 x 128 units."""
    from mlpcli.cli import app

    args = ["train", str(cohort_csv), "--target", "status", "--id", "sample", "--drop", "patient"]
    args += ["--preset", "realmlp_td", "--epochs", "1", "--ensemble", "2", "--seed", "3", "-q"]
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in paths:
        result = runner.invoke(app, [*args, "--out", str(path)])  # type: ignore[attr-defined]
        assert result.exit_code == 0, result.output
    (meta, a), (_, b) = (modelfile.load(p) for p in paths)
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert meta["recipe"]["config"]["hidden_layer_sizes"] == [128, 128, 128]
    shown = runner.invoke(app, ["inspect", str(paths[0])])  # type: ignore[attr-defined]
    assert "128 -> 128" in shown.output and "-> 256" not in shown.output, shown.output


def test_recipe_model_round_trips_and_predicts_as_trained(tmp_path: Path) -> None:
    frame = _table()
    outcome = _train(frame, **TINY_RECIPE)
    out = tmp_path / "m.npz"
    write_outputs(outcome, str(out))
    meta = modelfile.read_metadata(out)
    assert meta["recipe"]["preset"] == "realmlp_td"
    assert meta["recipe"]["config"]["hidden_layer_sizes"] == [8, 8]
    assert describe.preset_name(meta) == "realmlp_td"
    assert meta["layer_names"] == ["layer1", "layer2", "output"]
    model = load_trained(out)
    X = outcome.prepared.preprocessor.transform(frame)
    np.testing.assert_array_equal(model.net.forward(X), outcome.net.forward(X))
    predicted = predict_frame(model, frame)
    assert set(predicted["prediction"]) <= {"yes", "no"}
    assert list(predicted.columns) == ["row", "prediction", "proba_no", "proba_yes"]


def test_recipe_model_arrays_are_checked_against_the_recipe(tmp_path: Path) -> None:
    outcome = _train(_table(), **TINY_RECIPE)
    expected = modelfile.expected_arrays(outcome.metadata)
    net_arrays = {k: v.shape for k, v in outcome.arrays.items() if k.startswith("net.")}
    assert {k: v for k, v in expected.items() if k.startswith("net.")} == net_arrays


def test_spread_is_the_members_standard_deviation(tmp_path: Path) -> None:
    frame = _table()
    outcome = _train(frame, **TINY_RECIPE, ensemble=3)
    out = tmp_path / "e.npz"
    write_outputs(outcome, str(out))
    model = load_trained(out)
    both = predict_frame(model, frame, PredictOptions(spread=True))
    plain = predict_frame(model, frame)
    pd.testing.assert_frame_equal(both[plain.columns], plain)
    X = model.transform(frame)
    members = model.net.member_outputs(X)  # type: ignore[attr-defined]
    p_yes = members[:, :, 0]
    np.testing.assert_allclose(both["spread_yes"], p_yes.std(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(both["spread_no"], both["spread_yes"], rtol=1e-5, atol=1e-7)


def test_spread_of_a_single_network_is_an_error(tmp_path: Path) -> None:
    outcome = _train(_table(), epochs=2, hidden="4")
    out = tmp_path / "m.npz"
    write_outputs(outcome, str(out))
    with pytest.raises(UsageError, match="--spread needs an ensemble model"):
        predict_frame(load_trained(out), _table(), PredictOptions(spread=True))


def test_regression_recipe_spread_is_in_target_units(tmp_path: Path) -> None:
    frame = _table()
    frame["y"] = frame["a"] * 10.0 + 3.0
    outcome = _train(frame, **TINY_RECIPE, ensemble=2, ensemble_kind="batch")
    assert outcome.metadata["recipe"]["config"]["activation"] == "mish"
    assert outcome.metadata["recipe"]["config"]["label_smoothing"] == 0.0
    out = tmp_path / "r.npz"
    write_outputs(outcome, str(out))
    model = load_trained(out)
    got = predict_frame(model, frame, PredictOptions(spread=True))
    members = model.net.member_outputs(model.transform(frame))  # type: ignore[attr-defined]
    decoded = np.stack([model.encoder.decode(m)[:, 0] for m in members])
    np.testing.assert_allclose(got["spread"], decoded.std(axis=0), rtol=1e-5)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**TINY_RECIPE, "batchnorm": True}, "--batchnorm applies to --preset classic"),
        ({**TINY_RECIPE, "optimizer": "sgd"}, "trains with adamw"),
        ({"epochs": 2, "ensemble": 3}, "--ensemble applies to the recipe"),
        ({**TINY_RECIPE, "bag": True}, "--bag needs an ensemble"),
    ],
    ids=["classic-only", "optimizer", "ensemble-needs-recipe", "bag-needs-members"],
)
def test_options_that_do_not_apply_are_errors(values: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _train(_table(), **values)


def test_cli_trains_and_inspects_a_recipe_model(
    runner: object, cohort_csv: Path, tmp_path: Path
) -> None:
    from mlpcli.cli import app

    out = tmp_path / "m.npz"
    args = ["train", str(cohort_csv), "--target", "status", "--id", "sample", "--drop", "patient"]
    flags = ["--preset", "realmlp_td", "--hidden", "8", "--epochs", "2", "--ensemble", "2"]
    result = runner.invoke(app, [*args, *flags, "--out", str(out), "-q"])  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["inspect", str(out)])  # type: ignore[attr-defined]
    assert "realmlp_td (2 members, packed)" in shown.output
    # its export to ONNX: tests/test_export.py::test_cli_exports_a_recipe_ensemble


def test_calibrate_works_on_one_recipe_network_and_refuses_an_ensemble() -> None:
    outcome = _train(_table(), **TINY_RECIPE, calibrate=True)
    assert outcome.metadata["calibration"]["temperature"] > 0
    with pytest.raises(UsageError, match="--calibrate fits one temperature"):
        _train(_table(), **TINY_RECIPE, calibrate=True, ensemble=2)


def test_bag_gives_each_member_its_own_fold_and_trains(tmp_path: Path) -> None:
    from mlpcli.presets import training_weights

    outcome = _train(_table(), **TINY_RECIPE, ensemble=3, bag=True)
    assert outcome.metadata["recipe"]["config"]["bag"] is True
    weights = training_weights(outcome.net, None, 30)
    assert weights is not None and weights.shape == (30, 3)
    # every row is left out by exactly one member; folds of 10 rows
    np.testing.assert_array_equal(weights.sum(axis=1), 2.0)
    np.testing.assert_array_equal(weights.sum(axis=0), 20.0)
    assert training_weights(_train(_table(), **TINY_RECIPE).net, None, 30) is None
