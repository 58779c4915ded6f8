"""Losses: dZ against central differences, hand values, saturated logits, weights, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlpcli.errors import UsageError
from mlpcli.nn import activations, losses
from mlpcli.nn.losses import LOSSES

#: (loss, output activation): each loss with its own pairing, and every non-fused loss also
#: through the other output activations a regression may use.
PAIRS = [(name, cls.output_activation) for name, cls in LOSSES.items()] + [
    (name, act)
    for name, cls in LOSSES.items()
    if not cls.fused
    for act in ("sigmoid", "relu", "softplus", "softmax")
    if act != cls.output_activation
]
PAIR_IDS = [f"{loss}-{act}" for loss, act in PAIRS]

#: Kinks to keep away from: |r| = 0 for mae and huber, |r| = delta for huber, z = 0 for relu.
MARGIN = 0.1


def _problem(
    rng: np.random.Generator, loss_name: str, act_name: str, n: int = 6, k: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Logits Z and targets Y (float64) for which the loss is smooth within reach of Z."""
    Z = rng.uniform(MARGIN, 3.0, size=(n, k)) * rng.choice([-1.0, 1.0], size=(n, k))
    if loss_name == "ce":
        return Z, np.eye(k)[rng.integers(0, k, size=n)]
    if loss_name == "bce":
        return Z, rng.integers(0, 2, size=(n, k)).astype(float)
    # Residuals r = P - Y of both signs and both Huber regimes, never near 0 or delta = 1.
    P = activations.get(act_name).forward(Z)
    size = rng.choice([0.5, 2.0], size=(n, k)) + rng.uniform(-0.3, 0.3, size=(n, k))
    return Z, P - size * rng.choice([-1.0, 1.0], size=(n, k))


# ----------------------------------------------------------------- gradients
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(("loss_name", "act_name"), PAIRS, ids=PAIR_IDS)
def test_dZ_matches_central_difference(
    loss_name, act_name, weighted, rng, central_difference, relative_error
):
    loss, act = losses.get(loss_name), activations.get(act_name)
    Z, Y = _problem(rng, loss_name, act_name)
    w = rng.uniform(0.2, 3.0, size=len(Z)) if weighted else None
    numeric = central_difference(lambda: loss(Y, Z, act, w)[0], Z)
    value, dZ = loss(Y, Z.copy(), act, w)
    assert np.isfinite(value)
    assert np.any(dZ != 0)
    assert relative_error(dZ, numeric) < 1e-6


@pytest.mark.parametrize("targets", ["soft", "unnormalised", "all_zero_row"])
def test_ce_gradient_holds_for_targets_that_are_not_one_hot(
    targets, rng, central_difference, relative_error
):
    Z = rng.normal(size=(5, 4))
    Y = rng.dirichlet(np.ones(4), size=5)
    if targets == "unnormalised":
        Y *= rng.uniform(0.5, 2.0, size=(5, 1))
    elif targets == "all_zero_row":
        Y[2] = 0.0
    loss = losses.get("ce")
    numeric = central_difference(lambda: loss(Y, Z, SOFTMAX)[0], Z)
    assert relative_error(loss(Y, Z.copy(), SOFTMAX)[1], numeric) < 1e-6


@pytest.mark.parametrize(("loss_name", "act_name"), PAIRS, ids=PAIR_IDS)
def test_loss_leaves_Z_and_Y_alone(loss_name, act_name, rng):
    loss, act = losses.get(loss_name), activations.get(act_name)
    Z, Y = _problem(rng, loss_name, act_name)
    Z0, Y0 = Z.copy(), Y.copy()
    loss(Y, Z, act)
    np.testing.assert_array_equal(Z, Z0)
    np.testing.assert_array_equal(Y, Y0)


# ----------------------------------------------------------------- hand-computed values
LN3 = math.log(3.0)
IDENTITY, SIGMOID, SOFTMAX = (activations.get(n) for n in ("identity", "sigmoid", "softmax"))


def test_mse_mae_huber_hand_values():
    # Residuals r = [1, -2] and [0.5, 3] (Y = 0), 2 samples x 2 outputs, so dZ = l'(r) / 4:
    # mse l = r^2, mae l = |r|, huber (delta 1) l = r^2/2 if |r| <= 1 else |r| - 1/2.
    Y = np.zeros((2, 2))
    Z = np.array([[1.0, -2.0], [0.5, 3.0]])
    cases = {
        "mse": ([(1 + 4) / 2, (0.25 + 9) / 2], 2 * Z / 4),
        "mae": ([(1 + 2) / 2, (0.5 + 3) / 2], np.sign(Z) / 4),
        "huber": ([(0.5 + 1.5) / 2, (0.125 + 2.5) / 2], np.clip(Z, -1, 1) / 4),
    }
    for name, (per_sample, expected_dZ) in cases.items():
        value, dZ = losses.get(name)(Y, Z, IDENTITY)
        assert value == pytest.approx(np.mean(per_sample), rel=1e-12), name
        np.testing.assert_allclose(dZ, expected_dZ, rtol=1e-12, err_msg=name)


def test_bce_hand_values():
    # sigmoid(ln 3) = 3/4: y = 1 costs -ln(3/4); y = 0 costs -ln(1/4) = ln 4; z = 0 costs ln 2.
    Z = np.array([[LN3], [LN3], [0.0]])
    Y = np.array([[1.0], [0.0], [1.0]])
    value, dZ = losses.get("bce")(Y, Z, SIGMOID)
    assert value == pytest.approx((-math.log(0.75) + math.log(4.0) + math.log(2.0)) / 3, rel=1e-12)
    np.testing.assert_allclose(dZ, [[(0.75 - 1) / 3], [0.75 / 3], [(0.5 - 1) / 3]], rtol=1e-12)


def test_ce_hand_values():
    # softmax([0, ln 3]) = [1/4, 3/4]
    Z = np.array([[0.0, LN3], [0.0, LN3]])
    Y = np.array([[0.0, 1.0], [1.0, 0.0]])
    value, dZ = losses.get("ce")(Y, Z, SOFTMAX)
    assert value == pytest.approx((-math.log(0.75) + math.log(4.0)) / 2, rel=1e-12)
    np.testing.assert_allclose(dZ, [[0.125, -0.125], [-0.375, 0.375]], rtol=1e-12)


def test_sample_weights_are_a_weighted_mean():
    # per-sample mse [1, 4, 9] with weights [1, 3, 0]: (1 + 12 + 0) / 4
    Y = np.zeros((3, 1))
    Z = np.array([[1.0], [2.0], [3.0]])
    value, dZ = losses.get("mse")(Y, Z, IDENTITY, np.array([1.0, 3.0, 0.0]))
    assert value == pytest.approx(13 / 4, rel=1e-12)
    np.testing.assert_allclose(dZ, [[2 * 1 * 1 / 4], [2 * 2 * 3 / 4], [0.0]], rtol=1e-12)


@pytest.mark.parametrize(("loss_name", "act_name"), PAIRS, ids=PAIR_IDS)
def test_integer_weights_equal_repeated_rows(loss_name, act_name, rng):
    loss, act = losses.get(loss_name), activations.get(act_name)
    Z, Y = _problem(rng, loss_name, act_name, n=3)
    value_w, dZ_w = loss(Y, Z, act, np.array([2.0, 1.0, 3.0]))
    rows = [0, 0, 1, 2, 2, 2]
    value_r, dZ_r = loss(Y[rows], Z[rows], act)
    assert value_w == pytest.approx(value_r, rel=1e-12)
    np.testing.assert_allclose(dZ_w, np.add.reduceat(dZ_r, [0, 2, 3]), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(("loss_name", "act_name"), PAIRS, ids=PAIR_IDS)
def test_unit_weights_change_nothing(loss_name, act_name, rng):
    loss, act = losses.get(loss_name), activations.get(act_name)
    Z, Y = _problem(rng, loss_name, act_name)
    value, dZ = loss(Y, Z, act)
    value_1, dZ_1 = loss(Y, Z, act, np.ones(len(Z)))
    assert value_1 == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(dZ_1, dZ, rtol=1e-12)


@pytest.mark.parametrize(("loss_name", "act_name"), PAIRS, ids=PAIR_IDS)
def test_value_from_outputs_matches_value_from_logits(loss_name, act_name, rng):
    """`Loss.value(Y, P)`, used on predictions, agrees with the training loss."""
    loss, act = losses.get(loss_name), activations.get(act_name)
    Z, Y = _problem(rng, loss_name, act_name)
    w = rng.uniform(0.5, 2.0, size=len(Z))
    P = act.forward(Z)
    assert loss.value(Y, P) == pytest.approx(loss(Y, Z, act)[0], rel=1e-9)
    assert loss.value(Y, P, w) == pytest.approx(loss(Y, Z, act, w)[0], rel=1e-9)


# ----------------------------------------------------------------- stability
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_from_saturated_logits_is_finite_and_exact(dtype):
    Z = np.array([[1e4], [1e4], [-1e4], [-1e4]], dtype=dtype)
    Y = np.array([[1.0], [0.0], [0.0], [1.0]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value, dZ = losses.get("bce")(Y, Z, SIGMOID)
    # Right answers cost nothing; wrong ones cost |z| each.
    assert value == pytest.approx((0 + 1e4 + 0 + 1e4) / 4, rel=1e-6)
    np.testing.assert_allclose(dZ, [[0.0], [0.25], [0.0], [-0.25]], atol=1e-7)
    assert dZ.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ce_from_saturated_logits_is_finite_and_exact(dtype):
    Z = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=dtype)
    Y = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value, dZ = losses.get("ce")(Y, Z, SOFTMAX)
    # 0 for the confident right answer, 2e4 for the confident wrong one, ln 3 for a tie.
    assert value == pytest.approx((0 + 2e4 + math.log(3)) / 3, rel=1e-6)
    expected = np.array([[0, 0, 0], [1, -1, 0], [1 / 3, 1 / 3, -2 / 3]]) / 3
    np.testing.assert_allclose(dZ, expected, atol=1e-7)
    assert dZ.dtype == np.dtype(dtype)


@pytest.mark.parametrize(("loss_name", "act_name"), PAIRS, ids=PAIR_IDS)
def test_large_outputs_stay_finite(loss_name, act_name):
    loss, act = losses.get(loss_name), activations.get(act_name)
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], dtype=np.float32)
    Y = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value, dZ = loss(Y, Z, act)
    assert np.isfinite(value) and np.all(np.isfinite(dZ))


# ----------------------------------------------------------------- dtypes
@pytest.mark.parametrize("weights", [None, "float64", "int64"])
@pytest.mark.parametrize(("loss_name", "act_name"), PAIRS, ids=PAIR_IDS)
def test_float32_in_float32_out(loss_name, act_name, weights, rng):
    """No silent upcast, even with float64 or integer sample weights."""
    loss, act = losses.get(loss_name), activations.get(act_name)
    Z, Y = _problem(rng, loss_name, act_name)
    Z = Z.astype(np.float32)  # Y stays float64: targets straight from a table
    w = None if weights is None else np.arange(1, len(Z) + 1).astype(weights)
    value, dZ = loss(Y, Z, act, w)
    assert isinstance(value, float)
    assert dZ.dtype == np.float32


def test_weights_may_be_a_list():
    value, _ = losses.get("mse")(np.zeros((2, 1)), np.array([[1.0], [2.0]]), IDENTITY, [1, 1])
    assert value == pytest.approx(2.5)


def test_weights_of_the_wrong_length_raise():
    with pytest.raises(ValueError, match="sample_weight"):
        losses.get("mse")(np.zeros((2, 1)), np.ones((2, 1)), IDENTITY, np.ones(3))


# ----------------------------------------------------------------- registry and pairing
def test_unknown_loss_lists_the_choices():
    with pytest.raises(UsageError) as excinfo:
        losses.get("hinge")
    message = str(excinfo.value)
    assert message.startswith("Unknown loss 'hinge'; choose one of: ")
    for name in LOSSES:
        assert name in message


@pytest.mark.parametrize("name", [n for n, c in LOSSES.items() if c.fused])
def test_fused_loss_refuses_another_output_activation(name):
    loss = losses.get(name)
    wrong = "identity"
    with pytest.raises(UsageError, match=f"Loss '{name}' needs output activation"):
        loss(np.zeros((2, 2)), np.zeros((2, 2)), activations.get(wrong))


@pytest.mark.parametrize("name", list(LOSSES), ids=list(LOSSES))
def test_pairing_is_a_known_output_activation(name):
    assert LOSSES[name].output_activation in activations.OUTPUT_ACTIVATIONS
    assert losses.get(name).name == name


@pytest.mark.parametrize(("loss_name", "act_name"), PAIRS, ids=PAIR_IDS)
def test_a_batch_of_zero_weights_gives_zero_loss_and_gradient(loss_name, act_name, rng):
    """A mini-batch may hold only zero-weight samples; that must not turn into NaN."""
    loss, act = losses.get(loss_name), activations.get(act_name)
    Z, Y = _problem(rng, loss_name, act_name)
    value, dZ = loss(Y, Z, act, np.zeros(len(Z)))
    assert value == 0.0
    np.testing.assert_array_equal(dZ, 0.0)
    assert loss.value(Y, act.forward(Z), np.zeros(len(Z))) == 0.0


# ----------------------------------------------------------------- label smoothing
def test_ce_label_smoothing_by_hand():
    """epsilon 0.2, K = 2: y = (0, 1) -> y' = (0.1, 0.9); softmax(0, ln 3) = (1/4, 3/4)."""
    loss = losses.get("ce", label_smoothing=0.2)
    Z, Y = np.array([[0.0, math.log(3.0)]]), np.array([[0.0, 1.0]])
    value, dZ = loss(Y, Z, activations.get("softmax"))
    assert value == pytest.approx(-(0.1 * math.log(0.25) + 0.9 * math.log(0.75)), rel=1e-12)
    np.testing.assert_allclose(dZ, [[0.25 - 0.1, 0.75 - 0.9]], rtol=1e-12)


def test_bce_label_smoothing_by_hand():
    """epsilon 0.2: y = 1 -> y' = 0.9; sigmoid(ln 3) = 3/4."""
    loss = losses.get("bce", label_smoothing=0.2)
    value, dZ = loss(np.array([[1.0]]), np.array([[math.log(3.0)]]), activations.get("sigmoid"))
    assert value == pytest.approx(-(0.9 * math.log(0.75) + 0.1 * math.log(0.25)), rel=1e-12)
    np.testing.assert_allclose(dZ, [[0.75 - 0.9]], rtol=1e-12)


@pytest.mark.parametrize("name", ["bce", "ce"])
def test_label_smoothing_gradient_matches_central_difference(
    name, rng, central_difference, relative_error
):
    loss = losses.get(name, label_smoothing=0.1)
    act = activations.get(LOSSES[name].output_activation)
    Z, Y = _problem(rng, name, act.name)
    numeric = central_difference(lambda: loss(Y, Z, act)[0], Z)
    assert relative_error(loss(Y, Z, act)[1], numeric) < 1e-6


@pytest.mark.parametrize("name", ["bce", "ce"])
def test_no_label_smoothing_is_bit_identical(name, rng):
    act = activations.get(LOSSES[name].output_activation)
    Z, Y = _problem(rng, name, act.name)
    plain, smoothed0 = losses.get(name)(Y, Z, act), losses.get(name, 0.0)(Y, Z, act)
    assert plain[0] == smoothed0[0]
    np.testing.assert_array_equal(plain[1], smoothed0[1])


def test_label_smoothing_is_refused_for_regression_and_out_of_range():
    with pytest.raises(UsageError, match="--label-smoothing applies to the classification"):
        losses.get("mse", label_smoothing=0.1)
    with pytest.raises(UsageError, match=r"--label-smoothing must be in \[0, 1\); got 1.0"):
        losses.get("ce", label_smoothing=1.0)
