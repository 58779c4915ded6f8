"""The constant and linear baselines and the train/validation gap, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mlpcli import baselines


def test_constant_binary_is_the_majority_class() -> None:
    """Training prevalence 2/3 for every row: decisions at 0.5 are all positive, so on (1, 0)
    the accuracy is 1/2."""
    Y_train = np.array([[1.0], [1.0], [0.0]])
    P = baselines.constant_outputs("binary", Y_train, 2)
    np.testing.assert_allclose(P, [[2 / 3], [2 / 3]])
    assert baselines.score("binary", np.array([[1.0], [0.0]]), P) == pytest.approx(0.5)


def test_constant_multiclass_predicts_the_most_frequent_class() -> None:
    Y_train = np.eye(3)[[0, 2, 2, 1, 2]]  # class 2 in 3 of 5 rows
    P = baselines.constant_outputs("multiclass", Y_train, 4)
    np.testing.assert_allclose(P[0], [0.2, 0.2, 0.6])
    Y = np.eye(3)[[2, 2, 0, 1]]
    assert baselines.score("multiclass", Y, P) == pytest.approx(0.5)


def test_constant_regression_is_the_training_mean_so_r2_is_at_most_zero() -> None:
    """R^2 = 1 - SS_res / SS_tot: predicting the training mean 2 for targets (1, 3, 5), whose
    own mean is 3, gives 1 - (1 + 1 + 9) / (4 + 0 + 4) = -3/8."""
    P = baselines.constant_outputs("regression", np.array([[1.0], [2.0], [3.0]]), 3)
    Y = np.array([[1.0], [3.0], [5.0]])
    assert baselines.score("regression", Y, P) == pytest.approx(-3 / 8)


def test_gaps_by_hand() -> None:
    classification, regression = baselines.GAPS[True], baselines.GAPS[False]
    assert classification.value({"train_score": 1.0, "validation_score": 0.7}) == pytest.approx(0.3)
    assert regression.value({"train_mse": 0.2, "validation_mse": 0.5}) == pytest.approx(2.5)
    assert (classification.limit, regression.limit) == (0.15, 2.0)


def _record(train: float, valid: float, linear: float | None, constant: float = 0.5) -> dict:
    gap = baselines.GAPS[True]
    value = gap.value({"train_score": train, "validation_score": valid})
    return {
        "metric": "accuracy",
        "constant_rule": "majority",
        "constant": {"validation": constant},
        "network": {"train": train, "validation": valid},
        "linear": {} if linear is None else {"validation": linear},
        "gap": {
            "measure": gap.measure.format(role="validation"),
            "value": value,
            "limit": gap.limit,
            "large": value > gap.limit,
        },
    }


def test_a_large_gap_names_options_that_regularise() -> None:
    (hint,) = baselines.hints(_record(1.0, 0.7, 0.6))
    assert "train accuracy - validation accuracy = 0.300 > 0.15" in hint
    for option in ("--weight-decay", "--dropout", "--hidden"):
        assert option in hint


def test_a_linear_model_as_good_as_the_network_is_said() -> None:
    (hint,) = baselines.hints(_record(0.9, 0.85, 0.85))
    assert "linear baseline" in hint and "0.850" in hint and "--hidden ''" in hint


def test_a_network_no_better_than_the_majority_class_is_said() -> None:
    (hint,) = baselines.hints(_record(0.6, 0.5, 0.55, constant=0.5))
    assert "no better than the majority-class baseline (0.500)" in hint


def test_no_hint_when_the_network_generalises_and_beats_the_linear_model() -> None:
    assert baselines.hints(_record(0.9, 0.85, 0.8)) == []
    assert baselines.hints(_record(0.9, 0.85, None)) == []


def test_the_linear_settings_have_no_hidden_layer() -> None:
    from mlpcli.config import Settings

    settings = Settings().replace(hidden="64,32", activation="relu,tanh", dropout=0.2)
    linear = baselines.linear_settings(settings)
    assert linear.model.hidden == () and linear.model.dropout == 0.2
    assert linear.train == settings.train


def test_the_linear_baseline_of_the_recipe_is_linear() -> None:
    """The recipe's baseline keeps its settings but not the periodic embedding, which is not
    linear in the inputs (and was as dear as the network's on a wide table)."""
    from mlpcli.config import PRESETS, Settings

    settings = Settings().replace(**PRESETS["realmlp_td"], preset="realmlp_td")
    assert settings.model.embedding == "pbld"
    linear = baselines.linear_settings(settings)
    assert linear.model.hidden == () and linear.model.embedding == "none"
    assert linear.model.preset == "realmlp_td" and linear.train == settings.train


def test_an_undefined_score_is_none_not_nan() -> None:
    """R² of a single validation row is undefined: None (JSON null), since a NaN in the model
    file's metadata cannot be written."""
    Y = np.zeros((1, 1))
    assert baselines.score("regression", Y, np.ones((1, 1))) is None
    assert baselines.score("binary", Y, np.ones((1, 1))) == 0.0


def test_a_model_whose_validation_target_is_constant_is_saved(tmp_path) -> None:
    """The table hypothesis found (tests/test_fuzz.py): one validation row, R² undefined."""
    from mlpcli import config, pipeline, trained

    table = tmp_path / "t.csv"
    table.write_text("0,1,00,000\n1.0,a,a,7\n,a,a,7\n" + "0.0,a,a,7\n" * 4)
    settings = config.resolve(
        {
            "target": ["0"],
            "task": "regression",
            "epochs": 1,
            "hidden": "4",
            "batch_size": 8,
            "valid_fraction": 0.25,
        }
    )
    outcome = pipeline.train(str(table), settings, command=["test"])
    assert outcome.metadata["baselines"]["network"]["validation"] is None
    pipeline.write_outputs(outcome, str(tmp_path / "m.npz"))
    assert (
        trained.load_trained(tmp_path / "m.npz").metadata["baselines"]["constant"]["validation"]
        is None
    )
