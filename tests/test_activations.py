"""Activations: backward against central differences, hand values, saturation, dtypes, registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlpcli.errors import UsageError
from mlpcli.nn import activations
from mlpcli.nn.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS

#: Every activation, so a new registry entry is checked without touching this file.
ALL = list(ACTIVATIONS)
#: Activations with a kink at zero; gradient checks keep |z| away from it.
KINKED = {"relu", "leaky_relu", "elu"}


def _points(rng: np.random.Generator, shape: tuple[int, int] = (6, 5)) -> np.ndarray:
    """float64 points spread over [-4, 4] but at least 0.1 away from 0 (no kink in reach)."""
    Z = rng.uniform(0.1, 4.0, size=shape)
    return Z * rng.choice([-1.0, 1.0], size=shape)


# ----------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ALL, ids=ALL)
def test_backward_matches_central_difference(name, rng, central_difference, relative_error):
    """backward(dA) is the vector-Jacobian product dA^T d sigma / dZ, softmax's coupling too."""
    act = activations.get(name)
    Z = _points(rng)
    dA = rng.normal(size=Z.shape)

    def f() -> float:
        return float(np.sum(dA * act.forward(Z)))

    numeric = central_difference(f, Z)
    A = act.forward(Z)
    analytic = act.backward(dA.copy(), Z, A)
    assert np.any(analytic != 0)
    assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("slope", [0.0, 0.2, 0.5], ids=lambda s: f"slope={s}")
def test_leaky_relu_slope_in_forward_and_backward(slope, rng, central_difference, relative_error):
    act = activations.get("leaky_relu", leaky_relu_slope=slope)
    Z = _points(rng)
    np.testing.assert_array_equal(act.forward(Z), np.where(Z > 0, Z, slope * Z))
    dA = rng.normal(size=Z.shape)
    numeric = central_difference(lambda: float(np.sum(dA * act.forward(Z))), Z)
    analytic = act.backward(dA.copy(), Z, act.forward(Z))
    assert relative_error(analytic, numeric) < 1e-6


def test_elu_alpha_in_forward_and_backward(rng, central_difference, relative_error):
    act = activations.ELU(alpha=0.5)
    Z = _points(rng)
    np.testing.assert_allclose(act.forward(Z), np.where(Z > 0, Z, 0.5 * np.expm1(Z)))
    dA = rng.normal(size=Z.shape)
    numeric = central_difference(lambda: float(np.sum(dA * act.forward(Z))), Z)
    analytic = act.backward(dA.copy(), Z, act.forward(Z))
    assert relative_error(analytic, numeric) < 1e-6


# ----------------------------------------------------------------- hand-computed values
LN3 = math.log(3.0)
HAND_VALUES = {
    # name: (z values, sigma(z) worked out by hand)
    "identity": ([-2.0, 0.0, 3.5], [-2.0, 0.0, 3.5]),
    # 1 / (1 + e^-ln3) = 1 / (1 + 1/3) = 3/4
    "sigmoid": ([-LN3, 0.0, LN3], [0.25, 0.5, 0.75]),
    # tanh(ln 3) = (3 - 1/3) / (3 + 1/3) = 4/5
    "tanh": ([-LN3, 0.0, LN3], [-0.8, 0.0, 0.8]),
    "relu": ([-2.0, 0.0, 3.0], [0.0, 0.0, 3.0]),
    "leaky_relu": ([-2.0, 0.0, 3.0], [-0.02, 0.0, 3.0]),
    # log(1 + e^0) = ln 2; log(1 + e^ln3) = ln 4; log(1 + e^-ln3) = ln(4/3)
    "softplus": ([-LN3, 0.0, LN3], [math.log(4 / 3), math.log(2.0), math.log(4.0)]),
    # e^-ln2 - 1 = -1/2
    "elu": ([-math.log(2.0), 0.0, 2.0], [-0.5, 0.0, 2.0]),
    # lambda z above 0; lambda alpha (e^-ln2 - 1) = -lambda alpha / 2 at -ln 2
    "selu": (
        [-math.log(2.0), 0.0, 2.0],
        [-activations.SELU_LAMBDA * activations.SELU_ALPHA / 2, 0.0, 2.0 * activations.SELU_LAMBDA],
    ),
    # z tanh(log(1 + e^z)): 1 + e^ln2 = 3, tanh(ln 3) = 4/5; 1 + e^-ln2 = 3/2, tanh(ln 3/2) = 5/13
    "mish": (
        [-math.log(2.0), 0.0, math.log(2.0)],
        [-math.log(2.0) * 5 / 13, 0.0, math.log(2.0) * 0.8],
    ),
    # z Phi(z): 0 at 0, z for large z, 0 for very negative z, 1 * 0.8412 at 1 (tanh form)
    "gelu": ([-10.0, 0.0, 1.0, 10.0], [0.0, 0.0, 0.8411920, 10.0]),
}


@pytest.mark.parametrize("name", list(HAND_VALUES), ids=list(HAND_VALUES))
def test_forward_hand_values(name):
    z, expected = HAND_VALUES[name]
    got = activations.get(name).forward(np.array([z]))
    np.testing.assert_allclose(got[0], expected, rtol=1e-6, atol=1e-12)


def test_hand_values_cover_every_hidden_activation():
    assert set(HAND_VALUES) == set(HIDDEN_ACTIVATIONS)


def test_softmax_hand_values():
    # e^0 : e^ln3 = 1 : 3
    got = activations.get("softmax").forward(np.array([[0.0, LN3], [5.0, 5.0]]))
    np.testing.assert_allclose(got, [[0.25, 0.75], [0.5, 0.5]], rtol=1e-12)


# ----------------------------------------------------------------- stability
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ALL, ids=ALL)
def test_saturated_inputs_stay_finite_without_warnings(name, dtype):
    """|z| = 1e4: no overflow, no NaN, in forward and backward (underflow to 0 is harmless)."""
    act = activations.get(name)
    Z = np.array([[-1e4, -100.0, -1.0, 0.5, 100.0, 1e4]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        A = act.forward(Z)
        dZ = act.backward(np.ones_like(Z), Z, A)
    assert np.all(np.isfinite(A)) and np.all(np.isfinite(dZ))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_never_overflows(dtype):
    Z = np.array([[-1e30, -1e4, -710.0, -89.0, 0.0, 89.0, 710.0, 1e4, 1e30]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        A = activations.get("sigmoid").forward(Z)
    assert A.dtype == np.dtype(dtype)
    assert np.all((A >= 0.0) & (A <= 1.0))
    assert np.all(np.diff(A[0]) >= 0), "monotone"
    np.testing.assert_array_equal(A[0, [0, 1, -2, -1]], [0.0, 0.0, 1.0, 1.0])
    assert A[0, 4] == 0.5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_rows_sum_to_one(dtype, rng):
    Z = np.concatenate(
        [
            rng.normal(scale=3.0, size=(20, 7)),
            [[1e4, -1e4, 0, 0, 0, 0, 0]],
            [[-1e4] * 7],
            [[1e4] * 7],
            [[3e4, 3e4, -3e4, 0, 1, 2, 3]],
        ]
    ).astype(dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        P = activations.get("softmax").forward(Z)
    assert P.dtype == np.dtype(dtype)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=10 * np.finfo(dtype).eps)
    np.testing.assert_allclose(P[-4, :2], [1.0, 0.0])
    np.testing.assert_allclose(P[-3], 1 / 7, rtol=1e-6)
    np.testing.assert_allclose(P[-1, :3], [0.5, 0.5, 0.0])


# ----------------------------------------------------------------- dtypes and buffers
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ALL, ids=ALL)
def test_dtype_is_preserved(name, dtype, rng):
    act = activations.get(name)
    Z = _points(rng).astype(dtype)
    A = act.forward(Z)
    out = np.empty_like(Z)
    assert act.forward(Z, out=out) is out
    np.testing.assert_array_equal(out, A)
    dZ = act.backward(np.ones_like(Z), Z, A)
    assert (A.dtype, dZ.dtype) == (np.dtype(dtype), np.dtype(dtype))


@pytest.mark.parametrize("name", ALL, ids=ALL)
def test_forward_leaves_its_input_alone(name, rng):
    act = activations.get(name)
    Z = _points(rng)
    before = Z.copy()
    act.forward(Z)
    act.forward(Z, out=np.empty_like(Z))
    np.testing.assert_array_equal(Z, before)


# ----------------------------------------------------------------- registry
def test_unknown_name_lists_the_choices():
    with pytest.raises(UsageError) as excinfo:
        activations.get("relu6")
    message = str(excinfo.value)
    assert message.startswith("Unknown activation 'relu6'; choose one of: ")
    for name in ACTIVATIONS:
        assert name in message


def test_softmax_is_output_only():
    assert "softmax" not in HIDDEN_ACTIVATIONS
    assert "softmax" in activations.OUTPUT_ACTIVATIONS
    assert set(activations.OUTPUT_ACTIVATIONS) <= set(ACTIVATIONS)


@pytest.mark.parametrize("slope", [-0.1, 1.0, 2.0])
def test_leaky_slope_out_of_range_is_a_usage_error(slope):
    with pytest.raises(UsageError, match=r"--leaky-slope must be in \[0, 1\); got "):
        activations.get("leaky_relu", leaky_relu_slope=slope)


@pytest.mark.parametrize("name", ALL, ids=ALL)
def test_registry_names_match_classes(name):
    act = activations.get(name)
    assert act.name == name
    assert act.init in ("he_normal", "glorot_uniform")
