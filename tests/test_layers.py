"""mlpcli.nn.layers one at a time: each kind's backward against central differences in float64
(its parameters and its input), batch normalisation's output, dropout's mask. Whole-network
checks (every configuration, loss and activation together) are in test_network."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mlpcli.nn import activations
from mlpcli.nn.layers import ActivationLayer, BatchNorm, Dense, Dropout, Layer, Residual
from mlpcli.nn.network import MLP

N_SAMPLES, WIDTH = 6, 4


def _bind(layer: Layer, rng: np.random.Generator) -> list[np.ndarray]:
    """Random float64 parameters for `layer` (and its block's layers), with gradient buffers."""
    layers = [*getattr(layer, "block", []), layer]
    params = []
    for each in layers:
        specs = each.param_specs()
        p = [rng.normal(size=shape) for _, shape in specs]
        each.bind(p, [np.zeros(shape) for _, shape in specs])
        params += p
    return params


def _dense() -> Layer:
    return Dense(WIDTH, 3)


def _dense_without_bias() -> Layer:
    return Dense(WIDTH, 3, bias=False)


def _activation() -> Layer:
    return ActivationLayer(activations.get("tanh"))


def _residual() -> Layer:
    return Residual([Dense(WIDTH, WIDTH), ActivationLayer(activations.get("tanh"))])


LAYERS: dict[str, tuple[Callable[[], Layer], bool]] = {
    "dense": (_dense, True),
    "dense-no-bias": (_dense_without_bias, True),
    "activation": (_activation, True),
    "batchnorm-training": (lambda: BatchNorm(WIDTH), True),
    "batchnorm-inference": (lambda: BatchNorm(WIDTH), False),
    "dropout": (lambda: Dropout(0.4), True),
    "residual": (_residual, True),
}


@pytest.mark.parametrize("kind", list(LAYERS), ids=list(LAYERS))
def test_backward_matches_central_differences(kind, rng, central_difference, relative_error):
    """f = sum(forward(X) * G) for a fixed G: backward(G) is df/dX, and the parameter
    gradients it leaves are df/dparams. Each forward gets the same seed (one dropout mask)."""
    make, training = LAYERS[kind]
    layer = make()
    params = _bind(layer, rng)
    X = rng.normal(loc=0.5, size=(N_SAMPLES, WIDTH))
    n_out = layer.forward(X, training, np.random.default_rng(1)).shape[1]
    G = rng.normal(size=(N_SAMPLES, n_out))

    def f() -> float:
        return float(np.sum(layer.forward(X, training, np.random.default_rng(1)) * G))

    numeric_X = central_difference(f, X)
    numeric_params = [central_difference(f, p) for p in params]
    f()
    dX = layer.backward(G.copy())  # some layers write into dY
    assert dX is not None
    assert relative_error(dX, numeric_X) < 1e-7
    grads = [g for each in [*getattr(layer, "block", []), layer] for g in each.grads]
    for grad, numeric in zip(grads, numeric_params, strict=True):
        assert relative_error(grad, numeric) < 1e-7


def test_first_dense_layer_skips_the_input_gradient(rng):
    layer = Dense(WIDTH, 3, input_grad=False)
    _bind(layer, rng)
    layer.forward(rng.normal(size=(N_SAMPLES, WIDTH)), True, None)
    assert layer.backward(rng.normal(size=(N_SAMPLES, 3))) is None
    assert np.any(layer.grads[0] != 0)


def test_batchnorm_training_output_is_normalised(rng):
    net = MLP(4, (6,), 3, "identity", batchnorm=True, dtype="float64", seed=0)
    X = rng.normal(loc=-4.0, scale=5.0, size=(40, 4))
    hidden = net.layers[1].forward(net.layers[0].forward(X, True, None), True, None)
    np.testing.assert_allclose(hidden.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(hidden.var(axis=0), 1.0, rtol=1e-4)  # var / (var + eps)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_keeps_one_minus_p_and_rescales(p):
    layer = Dropout(p)
    X = np.ones((400, 250), dtype=np.float32)
    Y = layer.forward(X, training=True, rng=np.random.default_rng(0))
    kept = Y != 0
    assert kept.mean() == pytest.approx(1 - p, abs=0.01)
    np.testing.assert_allclose(Y[kept], 1 / (1 - p), rtol=1e-6)
    assert Y.mean() == pytest.approx(1.0, abs=0.02)  # expectation preserved
    assert Y.dtype == np.float32
    dX = layer.backward(np.ones_like(X))
    np.testing.assert_array_equal(dX, Y)  # the same mask scales the gradient
    np.testing.assert_array_equal(layer.forward(X, training=False, rng=None), X)
