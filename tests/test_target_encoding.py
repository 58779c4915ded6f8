"""Target encoding: labels and units in, network outputs out, and back; class weights; state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import save_and_load

from mlpcli.errors import DataError, UsageError
from mlpcli.target_encoding import TASKS, TargetEncoder

NAN = np.nan


def test_multiclass_round_trip_keeps_string_labels() -> None:
    data = pd.DataFrame({"subtype": ["luminal", "basal", "her2", "basal"]})
    enc = TargetEncoder().fit(data, ["subtype"], "multiclass")
    assert enc.labels == ["basal", "her2", "luminal"] and enc.n_outputs == 3
    y, Y = enc.encode(data)
    np.testing.assert_array_equal(y, [2, 0, 1, 0])
    np.testing.assert_array_equal(Y, np.eye(3)[[2, 0, 1, 0]])
    assert list(enc.decode(Y * 0.8 + 0.05)) == list(data["subtype"])


def test_binary_positive_class_is_second_label_and_threshold_applies() -> None:
    data = pd.DataFrame({"genotype": ["Ts65Dn", "Control", "Control"]})
    enc = TargetEncoder().fit(data, ["genotype"], "binary")
    y, Y = enc.encode(data)
    np.testing.assert_array_equal(y, [1, 0, 0])
    assert Y.shape == (3, 1) and Y.dtype == np.float32
    proba = np.array([[0.9], [0.3], [0.6]])
    assert list(enc.decode(proba)) == ["Ts65Dn", "Control", "Ts65Dn"]
    assert list(enc.decode(proba, threshold=0.7)) == ["Ts65Dn", "Control", "Control"]


def test_numeric_class_labels_match_across_int_and_float() -> None:
    enc = TargetEncoder().fit(pd.DataFrame({"y": [0, 1, 2]}), ["y"], "multiclass")
    assert enc.labels == ["0", "1", "2"]
    y, _ = enc.encode(pd.DataFrame({"y": [2.0, 0.0]}))
    np.testing.assert_array_equal(y, [2, 0])


def test_unseen_labels_at_evaluation_are_named() -> None:
    enc = TargetEncoder().fit(pd.DataFrame({"y": ["a", "b", "c"]}), ["y"], "multiclass")
    unseen = r"'y' has label\(s\) the model was not trained on: 'd', 'e'"
    with pytest.raises(DataError, match=unseen):
        enc.encode(pd.DataFrame({"y": ["a", "e", "d"]}))


def test_given_labels_fix_order_and_may_include_absent_classes() -> None:
    data = pd.DataFrame({"y": ["b", "a", "b"]})
    enc = TargetEncoder().fit(data, ["y"], "multiclass", labels=["a", "b", "c"])
    assert enc.n_outputs == 3
    with pytest.raises(DataError, match=r"missing from the label list: 'b'"):
        TargetEncoder().fit(data, ["y"], "multiclass", labels=["a", "c"])


def test_multilabel_round_trip() -> None:
    data = pd.DataFrame({"tp53": [0, 1, 1], "kras": [True, False, True]})
    enc = TargetEncoder().fit(data, ["tp53", "kras"], "multilabel")
    y, Y = enc.encode(data)
    np.testing.assert_array_equal(y, [[0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(Y, y)
    decoded = enc.decode(np.array([[0.1, 0.9], [0.8, 0.2], [0.7, 0.6]]))
    np.testing.assert_array_equal(decoded, [["0", "True"], ["1", "False"], ["1", "True"]])


def test_regression_standardises_with_training_rows_and_decodes_back() -> None:
    train = pd.DataFrame({"ic50": [1.0, 2.0, 3.0, 6.0], "auc": [10.0, 10.0, 20.0, 40.0]})
    enc = TargetEncoder().fit(train, ["ic50", "auc"], "regression")
    Y = enc.encode(train, dtype=np.float64)
    np.testing.assert_allclose(Y.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Y.std(axis=0), 1.0)
    np.testing.assert_allclose(enc.decode(Y), train.to_numpy())
    later = pd.DataFrame({"ic50": [3.0], "auc": [20.0]})
    np.testing.assert_allclose(enc.encode(later, dtype=np.float64), [[0.0, 0.0]], atol=1e-12)


def test_regression_target_with_text_is_an_error() -> None:
    with pytest.raises(DataError, match=r"Target 'ic50' must be numeric but holds 'high'"):
        TargetEncoder().fit(pd.DataFrame({"ic50": ["1.5", "high"]}), ["ic50"], "regression")


def test_balanced_class_weights_follow_the_formula() -> None:
    data = pd.DataFrame({"y": ["a"] * 6 + ["b"] * 3 + ["c"]})
    enc = TargetEncoder().fit(data, ["y"], "multiclass")
    y, _ = enc.encode(data)
    weights = enc.class_weights(y)
    n, k = 10, 3
    expected = np.array([n / (k * 6)] * 6 + [n / (k * 3)] * 3 + [n / (k * 1)])
    np.testing.assert_allclose(weights, expected)
    assert weights.sum() == pytest.approx(n)  # balanced weights keep the total


def test_class_weight_mapping_and_its_errors() -> None:
    data = pd.DataFrame({"y": ["a", "b", "b"]})
    enc = TargetEncoder().fit(data, ["y"], "binary")
    y, _ = enc.encode(data)
    np.testing.assert_array_equal(enc.class_weights(y, {"a": 5.0}), [5.0, 1.0, 1.0])
    with pytest.raises(UsageError, match=r"--class-weight names unknown class\(es\) 'z'"):
        enc.class_weights(y, {"z": 2.0})
    with pytest.raises(UsageError, match=r"Unknown class weight 'even'; choose one of: balanced"):
        enc.class_weights(y, "even")


STATE_CASES = {
    "binary": (pd.DataFrame({"y": ["no", "yes", "yes"]}), ["y"]),
    "multiclass": (pd.DataFrame({"y": ["x", "y", "z"]}), ["y"]),
    "multilabel": (pd.DataFrame({"a": [0, 1, 1], "b": [1, 1, 0]}), ["a", "b"]),
    "regression": (pd.DataFrame({"a": [0.5, 1.0, 4.0], "b": [1.0, -2.0, 0.0]}), ["a", "b"]),
}


@pytest.mark.parametrize("task", sorted(TASKS), ids=str)
def test_target_state_round_trip(task: str) -> None:
    data, targets = STATE_CASES[task]
    enc = TargetEncoder().fit(data, targets, task)
    rebuilt = TargetEncoder.from_state(*save_and_load(*enc.to_state()))
    assert (rebuilt.task, rebuilt.targets, rebuilt.labels) == (task, enc.targets, enc.labels)
    output = np.random.default_rng(1).random((3, enc.n_outputs))
    np.testing.assert_array_equal(rebuilt.decode(output), enc.decode(output))
    first, second = enc.encode(data), rebuilt.encode(data)
    if not enc.classification:
        first, second = (first,), (second,)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
