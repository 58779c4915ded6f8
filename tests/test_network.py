"""The MLP: whole-network gradient checks, dtypes, logistic regression, vanishing gradients,
parameters and state, batch norm, dropout, residual connections, initialisers, usage errors."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from mlpcli.errors import UsageError
from mlpcli.nn import activations, initializers
from mlpcli.nn.activations import HIDDEN_ACTIVATIONS
from mlpcli.nn.layers import Layer
from mlpcli.nn.losses import LOSSES
from mlpcli.nn.network import MLP, Architecture

N_INPUTS, N_OUTPUTS, N_SAMPLES = 4, 3, 7


def _targets(rng: np.random.Generator, loss: str, n: int, k: int) -> np.ndarray:
    if loss == "ce":
        return np.eye(k)[rng.integers(0, k, size=n)]
    if loss == "bce":
        return rng.integers(0, 2, size=(n, k)).astype(float)
    return rng.normal(size=(n, k))


def _gradient_check(
    net: MLP,
    X: np.ndarray,
    Y: np.ndarray,
    central_difference: Any,
    relative_error: Any,
    sample_weight: np.ndarray | None = None,
    training: bool = True,
) -> float:
    """Relative error of `loss_and_gradients` against central differences over every parameter.

    Each evaluation gets a fresh generator with the same seed, so dropout masks stay fixed.
    """

    def f() -> float:
        rng = np.random.default_rng(12345)
        return net.loss_and_gradients(X, Y, sample_weight, training=training, rng=rng)[0]

    numeric = central_difference(f, net.flat_params)
    f()
    analytic = net.flat_grads.copy()
    for s in net.layer_slices:
        assert np.any(analytic[s] != 0), "every layer must receive some gradient"
    return relative_error(analytic, numeric)


# ----------------------------------------------------------------- whole-network gradients
CONFIGS: dict[str, dict[str, Any]] = {
    "plain": dict(hidden_layer_sizes=(5, 4), activation="tanh", loss="ce"),
    "batchnorm": dict(hidden_layer_sizes=(5, 4), activation="relu", loss="bce", batchnorm=True),
    "residual": dict(
        hidden_layer_sizes=(5, 5, 5), activation="softplus", loss="mse", residual=True
    ),
    "dropout": dict(hidden_layer_sizes=(6, 5), activation="sigmoid", loss="ce", dropout=0.3),
    "weight_decay": dict(
        hidden_layer_sizes=(5, 4), activation="elu", loss="huber", weight_decay=0.1
    ),
    "activation_per_layer": dict(
        hidden_layer_sizes=(4,) * len(HIDDEN_ACTIVATIONS),
        activation=list(HIDDEN_ACTIVATIONS),
        loss="mse",
    ),
    "no_hidden_layer": dict(hidden_layer_sizes=(), loss="ce"),
    "no_hidden_layer_bce_decay": dict(hidden_layer_sizes=(), loss="bce", weight_decay=0.5),
    "everything": dict(
        hidden_layer_sizes=(5, 5, 5),
        activation=["gelu", "leaky_relu", "tanh"],
        loss="ce",
        batchnorm=True,
        residual=True,
        dropout=0.2,
        weight_decay=0.05,
    ),
}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_loss_and_gradients_match_central_differences(
    config, weighted, rng, central_difference, relative_error
):
    kwargs = CONFIGS[config]
    net = MLP(N_INPUTS, n_outputs=N_OUTPUTS, dtype="float64", seed=3, **kwargs)
    X = rng.normal(size=(N_SAMPLES, N_INPUTS))
    Y = _targets(rng, kwargs["loss"], N_SAMPLES, N_OUTPUTS)
    w = rng.uniform(0.2, 3.0, size=N_SAMPLES) if weighted else None
    assert _gradient_check(net, X, Y, central_difference, relative_error, w) < 1e-6


@pytest.mark.parametrize("loss", list(LOSSES), ids=list(LOSSES))
def test_every_loss_backpropagates_through_the_network(
    loss, rng, central_difference, relative_error
):
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, activation="tanh", loss=loss, dtype="float64", seed=4)
    X = rng.normal(size=(N_SAMPLES, N_INPUTS))
    Y = _targets(rng, loss, N_SAMPLES, N_OUTPUTS)
    assert _gradient_check(net, X, Y, central_difference, relative_error) < 1e-6


@pytest.mark.parametrize("output", ["sigmoid", "softplus", "softmax"])
def test_regression_losses_with_other_output_activations(
    output, rng, central_difference, relative_error
):
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, "tanh", output, loss="mse", dtype="float64", seed=5)
    X = rng.normal(size=(N_SAMPLES, N_INPUTS))
    Y = rng.uniform(size=(N_SAMPLES, N_OUTPUTS))
    assert _gradient_check(net, X, Y, central_difference, relative_error) < 1e-6


def test_batchnorm_gradients_in_inference_mode(rng, central_difference, relative_error):
    """With training=False the running statistics are constants, and backward must know it."""
    net = MLP(N_INPUTS, (5, 4), N_OUTPUTS, "tanh", loss="ce", batchnorm=True, dtype="float64")
    X = rng.normal(loc=1.0, scale=2.0, size=(N_SAMPLES, N_INPUTS))
    for _ in range(3):
        net.forward(X, training=True)  # move the running statistics away from 0 and 1
    Y = _targets(rng, "ce", N_SAMPLES, N_OUTPUTS)
    assert _gradient_check(net, X, Y, central_difference, relative_error, training=False) < 1e-6


def test_weight_decay_adds_the_l2_penalty_to_loss_and_weight_gradients(rng):
    X = rng.normal(size=(N_SAMPLES, N_INPUTS))
    Y = _targets(rng, "mse", N_SAMPLES, N_OUTPUTS)
    plain = MLP(N_INPUTS, (5,), N_OUTPUTS, dtype="float64", seed=1)
    decayed = MLP(N_INPUTS, (5,), N_OUTPUTS, dtype="float64", seed=1, weight_decay=0.3)
    loss0, grads0 = plain.loss_and_gradients(X, Y)
    grads0 = [g.copy() for g in grads0]
    loss1, grads1 = decayed.loss_and_gradients(X, Y)
    W1, _, W2, _ = decayed.parameters()
    assert loss1 == pytest.approx(loss0 + 0.15 * (np.sum(W1**2) + np.sum(W2**2)), rel=1e-12)
    expected = [grads0[0] + 0.3 * W1, grads0[1], grads0[2] + 0.3 * W2, grads0[3]]
    for got, want in zip(grads1, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    # loss() is the data loss alone, for reporting and early stopping.
    assert decayed.loss(X, Y) == pytest.approx(loss0, rel=1e-12)


# ----------------------------------------------------------------- dtypes
def _all_layers(layers: list[Layer]) -> list[Layer]:
    out: list[Layer] = []
    for layer in layers:
        out.append(layer)
        out.extend(_all_layers(getattr(layer, "block", [])))
    return out


def _record_dtypes(net: MLP, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Any]]:
    """Wrap every layer so each intermediate array's dtype is recorded."""
    seen: list[tuple[str, str, Any]] = []
    for layer in _all_layers(net.layers):

        def forward(X, training, rng, _f=layer.forward, _kind=layer.kind):
            out = _f(X, training, rng)
            seen.append((_kind, "forward", out.dtype))
            return out

        def backward(dY, _b=layer.backward, _kind=layer.kind):
            out = _b(dY)
            if out is not None:
                seen.append((_kind, "backward", out.dtype))
            return out

        monkeypatch.setattr(layer, "forward", forward)
        monkeypatch.setattr(layer, "backward", backward)
    return seen


@pytest.mark.parametrize("loss", list(LOSSES), ids=list(LOSSES))
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS, ids=HIDDEN_ACTIVATIONS)
def test_float32_stays_float32_throughout(activation, loss, rng, monkeypatch):
    """No silent upcast anywhere: inputs may be float64, every intermediate is float32."""
    net = MLP(
        N_INPUTS,
        (6, 6),
        N_OUTPUTS,
        activation,
        loss=loss,
        batchnorm=True,
        dropout=0.2,
        residual=True,
        weight_decay=0.01,
        seed=0,
    )
    seen = _record_dtypes(net, monkeypatch)
    X = rng.normal(size=(N_SAMPLES, N_INPUTS))  # float64 on purpose
    Y = _targets(rng, loss, N_SAMPLES, N_OUTPUTS)
    w = rng.uniform(size=N_SAMPLES)
    value, grads = net.loss_and_gradients(X, Y, w)
    assert isinstance(value, float) and math.isfinite(value)
    assert {str(dtype) for _, _, dtype in seen} == {"float32"}, seen
    assert len({(kind, direction) for kind, direction, _ in seen}) == 10  # 5 kinds x 2
    assert all(g.dtype == np.float32 for g in grads)
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net.flat_params.dtype == net.flat_grads.dtype == np.float32
    assert all(v.dtype == np.float32 for v in net.state_arrays().values())
    assert net.forward(X).dtype == np.float32
    assert net.forward(X, training=True).dtype == np.float32
    assert isinstance(net.loss(X, Y), float)


def test_float64_on_request(rng):
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, loss="ce", batchnorm=True, dtype="float64", seed=0)
    X = rng.normal(size=(N_SAMPLES, N_INPUTS)).astype(np.float32)
    _, grads = net.loss_and_gradients(X, _targets(rng, "ce", N_SAMPLES, N_OUTPUTS))
    assert net.forward(X).dtype == np.float64
    assert all(g.dtype == np.float64 for g in grads)
    assert all(v.dtype == np.float64 for v in net.state_arrays().values())
    assert net.architecture.dtype == "float64"


@pytest.mark.parametrize("dtype", ["float16", "int32", "bfloat", "nonsense"])
def test_unsupported_dtype_is_a_usage_error(dtype):
    with pytest.raises(UsageError, match=r"Unknown dtype '.*'; choose one of: float32, float64"):
        MLP(N_INPUTS, (5,), dtype=dtype)


# ----------------------------------------------------------------- logistic regression
def _newton_logistic(X: np.ndarray, y: np.ndarray, decay: float) -> np.ndarray:
    """argmin mean BCE + decay/2 ||w||^2 (bias not penalised) by Newton's method (IRLS)."""
    Xb = np.hstack([X, np.ones((len(X), 1))])
    penalty = decay * np.diag([1.0] * X.shape[1] + [0.0])
    theta = np.zeros(Xb.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-Xb @ theta))
        grad = Xb.T @ (p - y) / len(y) + penalty @ theta
        hessian = (Xb * (p * (1 - p))[:, None]).T @ Xb / len(y) + penalty
        theta -= np.linalg.solve(hessian, grad)
        if np.linalg.norm(grad) < 1e-13:
            break
    return theta


@pytest.mark.parametrize("decay", [0.0, 0.05], ids=["no_decay", "decay"])
def test_no_hidden_layer_sigmoid_bce_is_logistic_regression(decay, rng):
    n, d = 200, 3
    X = rng.normal(size=(n, d))
    # Labels drawn from a logistic model: overlapping classes, so the optimum is finite.
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(X @ [1.5, -2.0, 0.5] + 0.3)))).astype(float)
    theta = _newton_logistic(X, y, decay)

    net = MLP(d, (), 1, loss="bce", weight_decay=decay, dtype="float64", seed=0)
    assert net.architecture.output_activation == "sigmoid"
    W, b = net.parameters()
    for _ in range(5000):  # full-batch gradient descent
        loss, (dW, db) = net.loss_and_gradients(X, y[:, None])
        W -= 2.0 * dW
        b -= 2.0 * db
        if math.hypot(np.linalg.norm(dW), float(db[0])) < 1e-10:
            break
    np.testing.assert_allclose(np.append(W[:, 0], b), theta, atol=1e-7)

    p = 1 / (1 + np.exp(-(X @ theta[:d] + theta[d])))
    objective = (
        -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)) + decay / 2 * theta[:d] @ theta[:d]
    )
    assert loss == pytest.approx(objective, rel=1e-10)
    np.testing.assert_allclose(net.forward(X)[:, 0], p, rtol=1e-6)


# ----------------------------------------------------------------- vanishing gradients
def _first_over_last_hidden(seed: int, **kwargs: Any) -> float:
    """||grad layer 1|| / ||grad last hidden layer|| after one backward pass, 8 hidden layers."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(64, 10))
    y = (X[:, :1] + 0.5 * rng.normal(size=(64, 1)) > 0).astype(float)
    net = MLP(10, (16,) * 8, 1, loss="bce", dtype="float64", seed=seed, **kwargs)
    net.loss_and_gradients(X, y)
    norms = net.layer_grad_norms()
    assert len(norms) == 9  # 8 hidden layers and the output
    return norms[0] / norms[-2]


# Over seeds 0-29 (measured when these tests were written), first / last hidden was
# 6e-6 to 3e-3 for sigmoid, 1.3 to 3.9 for relu + batch norm and 0.094 to 0.69 for relu + skip
# connections (whose last layers see a residual stream grown by every block).
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deep_sigmoid_network_has_vanishing_gradients(seed):
    """sigma' <= 1/4 per layer: the first layer learns orders of magnitude slower."""
    assert _first_over_last_hidden(seed, activation="sigmoid") < 1e-2


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "remedy",
    [dict(activation="relu", batchnorm=True), dict(activation="relu", residual=True)],
    ids=["relu_he_batchnorm", "relu_residual"],
)
def test_relu_with_batchnorm_or_skip_connections_keeps_gradients_alive(remedy, seed):
    """Within about an order of magnitude, and far above the sigmoid network's ratio."""
    ratio = _first_over_last_hidden(seed, **remedy)
    assert 1 / 20 <= ratio <= 20
    assert ratio > 10 * _first_over_last_hidden(seed, activation="sigmoid")


# ----------------------------------------------------------------- seeds and parameters
def test_same_seed_same_weights_different_seed_different_weights():
    a = MLP(N_INPUTS, (5, 4), N_OUTPUTS, seed=7)
    b = MLP(N_INPUTS, (5, 4), N_OUTPUTS, seed=7)
    c = MLP(N_INPUTS, (5, 4), N_OUTPUTS, seed=8)
    g = MLP(N_INPUTS, (5, 4), N_OUTPUTS, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    np.testing.assert_array_equal(a.flat_params, g.flat_params)
    for pa, pc, name in zip(a.parameters(), c.parameters(), a.param_names, strict=True):
        if name.endswith(".W"):
            assert not np.array_equal(pa, pc), name


def test_parameter_order_names_and_shapes():
    net = MLP(N_INPUTS, (5, 4), N_OUTPUTS, seed=0)
    assert net.param_names == [
        "layer1.W",
        "layer1.b",
        "layer2.W",
        "layer2.b",
        "output.W",
        "output.b",
    ]
    assert [p.shape for p in net.parameters()] == [(4, 5), (5,), (5, 4), (4,), (4, 3), (3,)]
    assert [g.shape for g in net.gradients()] == [p.shape for p in net.parameters()]
    assert net.n_parameters() == [4 * 5 + 5, 5 * 4 + 4, 4 * 3 + 3]
    assert net.decay_masks() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    bn = MLP(N_INPUTS, (5,), N_OUTPUTS, batchnorm=True, seed=0)
    assert bn.param_names == ["layer1.W", "layer1.gamma", "layer1.beta", "output.W", "output.b"]
    assert bn.decay_masks() == [1.0, 0.0, 0.0, 1.0, 0.0]
    np.testing.assert_array_equal(bn.parameters()[1], 1.0)  # gamma starts at one
    np.testing.assert_array_equal(bn.parameters()[2], 0.0)  # beta, like every bias, at zero


def test_flat_buffers_are_partitioned_by_layer_slices():
    net = MLP(N_INPUTS, (5, 4), N_OUTPUTS, batchnorm=True, seed=0)
    starts = [s.start for s in net.layer_slices]
    stops = [s.stop for s in net.layer_slices]
    assert starts[0] == 0 and stops[-1] == net.flat_params.size
    assert starts[1:] == stops[:-1]
    mask = net.flat_decay_mask()
    assert mask.shape == net.flat_params.shape
    weights = [
        p for p, name in zip(net.parameters(), net.param_names, strict=True) if name[-1] == "W"
    ]
    assert mask.sum() == sum(W.size for W in weights) == 4 * 5 + 5 * 4 + 4 * 3
    for p, g in zip(net.parameters(), net.gradients(), strict=True):
        assert np.shares_memory(p, net.flat_params)
        assert np.shares_memory(g, net.flat_grads)


def test_parameters_are_live_views(rng):
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, loss="ce", seed=0)
    X = rng.normal(size=(N_SAMPLES, N_INPUTS))
    before = net.forward(X)
    net.parameters()[0][0, 0] += 1.0
    assert not np.allclose(net.forward(X), before)
    for p in net.parameters():
        p[...] = 0.0
    np.testing.assert_allclose(net.forward(X), 1 / N_OUTPUTS)  # softmax of all-zero logits
    net.flat_params[:] = 0.5
    assert all(np.all(p == 0.5) for p in net.parameters())


def test_gradients_are_the_networks_own_buffers(rng):
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, seed=0)
    X, Y = rng.normal(size=(N_SAMPLES, N_INPUTS)), rng.normal(size=(N_SAMPLES, N_OUTPUTS))
    _, grads = net.loss_and_gradients(X, Y)
    assert all(np.shares_memory(g, net.flat_grads) for g in grads)
    assert np.any(net.flat_grads != 0)


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_forward_matches_the_formula(config, rng):
    """Hand-written X(l+1) = sigma(X(l) W + b) [+ X(l)], in inference mode."""
    kwargs = dict(CONFIGS[config])
    net = MLP(N_INPUTS, n_outputs=N_OUTPUTS, dtype="float64", seed=2, **kwargs)
    X = rng.normal(size=(N_SAMPLES, N_INPUTS))
    for _ in range(2):
        net.forward(X, training=True)  # make running statistics non-trivial
    arch, params = net.architecture, iter(net.parameters())
    bns = iter(net.batchnorm_layers())
    A = X
    for i, name in enumerate(arch.activation):
        Z = A @ next(params)
        if arch.batchnorm:
            bn = next(bns)
            Z = (Z - bn.running_mean) / np.sqrt(bn.running_var + bn.eps)
            Z = Z * next(params) + next(params)
        else:
            Z = Z + next(params)
        H = activations.get(name).forward(Z)
        A = H + A if arch.residual and i > 0 else H
    Z = A @ next(params) + next(params)
    expected = activations.get(arch.output_activation).forward(Z)
    np.testing.assert_allclose(net.forward(X), expected, rtol=1e-12, atol=1e-14)


def test_forward_in_batches_equals_forward_at_once(rng):
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, loss="ce", seed=0)
    X = rng.normal(size=(23, N_INPUTS))
    np.testing.assert_array_equal(net.forward(X, batch_size=5), net.forward(X))


def _scratch(net: MLP) -> int:
    """Scratch arrays the layers hold (residual blocks included)."""
    inner = [layer for outer in net.layers for layer in getattr(outer, "block", [])]
    layers = [*net.layers, *inner]
    return sum(len(layer._buffers._arrays) for layer in layers)


@pytest.mark.parametrize(
    "options",
    [{}, {"batchnorm": True}, {"dropout": 0.3}, {"residual": True}],
    ids=["plain", "batchnorm", "dropout", "residual"],
)
def test_a_pass_over_several_batches_lets_its_scratch_go_and_training_is_unchanged(
    options: dict, rng: np.random.Generator
) -> None:
    """After a forward of several batches (train's metrics on every row) the layers hold no
    scratch; one batch keeps it. Training on, the weights are those of a run that never let go."""
    X, Y = rng.normal(size=(40, N_INPUTS)), np.eye(N_OUTPUTS)[rng.integers(0, N_OUTPUTS, 40)]
    kept, released = (MLP(N_INPUTS, (6, 6), N_OUTPUTS, loss="ce", seed=2, **options) for _ in "ab")
    for step in range(3):
        for net in (kept, released):
            net.loss_and_gradients(X[:16], Y[:16], rng=np.random.default_rng(step))
            net.flat_params[...] -= 0.1 * net.flat_grads
        single = released.forward(X[:5], batch_size=8)
        assert _scratch(released) > 0
        by_batch = np.concatenate([kept.forward(X[i : i + 8]) for i in range(0, 40, 8)])
        np.testing.assert_array_equal(released.forward(X, batch_size=8), by_batch)
        assert _scratch(released) == 0
        np.testing.assert_array_equal(single, kept.forward(X[:5]))
    np.testing.assert_array_equal(released.flat_params, kept.flat_params)


def test_input_of_the_wrong_width_raises(rng):
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, seed=0)
    with pytest.raises(ValueError, match=r"expected X of shape \(n, 4\), got \(3, 5\)"):
        net.forward(np.zeros((3, 5)))


# ----------------------------------------------------------------- state and architecture
def test_state_arrays_round_trip(rng):
    a = MLP(N_INPUTS, (5, 5), N_OUTPUTS, loss="ce", batchnorm=True, residual=True, seed=1)
    X = rng.normal(loc=2.0, size=(N_SAMPLES, N_INPUTS))
    a.forward(X, training=True)
    a.flat_params += rng.normal(scale=0.1, size=a.flat_params.shape).astype(np.float32)
    state = a.state_arrays()
    assert {"bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"} <= set(
        state
    )
    b = MLP.from_architecture(a.architecture, seed=99)
    assert not np.array_equal(b.forward(X), a.forward(X))
    b.load_state_arrays(state)
    np.testing.assert_array_equal(b.forward(X), a.forward(X))
    np.testing.assert_array_equal(b.flat_params, a.flat_params)
    # state_arrays() returns copies: changing them leaves the network alone.
    state["layer1.W"][...] = 0.0
    state["bn1.running_mean"][...] = 0.0
    np.testing.assert_array_equal(b.forward(X), a.forward(X))


def test_load_state_arrays_keeps_the_buffers_and_dtype(rng):
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, seed=1)
    state = {k: v.astype(np.float64) + 1.0 for k, v in net.state_arrays().items()}
    views = net.parameters()
    net.load_state_arrays(state)
    assert all(np.shares_memory(v, net.flat_params) for v in net.parameters())
    assert all(v is w for v, w in zip(views, net.parameters(), strict=True))
    assert net.flat_params.dtype == np.float32
    np.testing.assert_allclose(net.parameters()[0], state["layer1.W"], rtol=1e-6)


def test_load_state_arrays_rejects_a_mismatch():
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, batchnorm=True, seed=1)
    state = net.state_arrays()
    with pytest.raises(ValueError, match=r"array 'layer1.W' has shape \(5, 5\), expected \(4, 5\)"):
        net.load_state_arrays({**state, "layer1.W": np.zeros((5, 5))})
    with pytest.raises(ValueError, match=r"array 'bn1.running_var' has shape \(4,\)"):
        net.load_state_arrays({**state, "bn1.running_var": np.zeros(4)})
    missing = {k: v for k, v in state.items() if k != "output.b"}
    with pytest.raises(ValueError, match=r"missing \['output.b'\]"):
        net.load_state_arrays(missing)
    with pytest.raises(ValueError, match=r"extra \['layer9.W'\]"):
        net.load_state_arrays({**state, "layer9.W": np.zeros(1)})
    before = net.flat_params.copy()
    shifted = {name: value + 1.0 for name, value in state.items()}
    with pytest.raises(ValueError, match=r"array 'output\.b' has shape \(7,\)"):
        net.load_state_arrays({**shifted, "output.b": np.zeros(7)})
    np.testing.assert_array_equal(net.flat_params, before)  # nothing half-loaded
    np.testing.assert_array_equal(net.batchnorm_layers()[0].running_mean, state["bn1.running_mean"])


def test_architecture_round_trips_through_json():
    net = MLP(N_INPUTS, (5, 5), N_OUTPUTS, ["relu", "tanh"], loss="ce", dropout=0.1, seed=3)
    d = json.loads(json.dumps(net.architecture.to_dict()))
    arch = Architecture.from_dict(d)
    assert arch == net.architecture
    again = MLP.from_architecture(arch, seed=3)
    np.testing.assert_array_equal(again.flat_params, net.flat_params)


# ----------------------------------------------------------------- batch normalisation
def test_batchnorm_running_statistics_and_modes(rng):
    net = MLP(N_INPUTS, (5,), N_OUTPUTS, loss="ce", batchnorm=True, dtype="float64", seed=0)
    (bn,) = net.batchnorm_layers()
    X = rng.normal(loc=3.0, scale=2.0, size=(50, N_INPUTS))
    np.testing.assert_array_equal(bn.running_mean, 0.0)
    np.testing.assert_array_equal(bn.running_var, 1.0)

    inference = net.forward(X)
    np.testing.assert_array_equal(bn.running_mean, 0.0)  # inference leaves them alone
    training = net.forward(X, training=True)
    assert not np.allclose(training, inference)

    # One step of running <- 0.9 running + 0.1 batch, with the pre-normalisation Z = X W.
    Z = X @ net.parameters()[0]
    np.testing.assert_allclose(bn.running_mean, 0.1 * Z.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * Z.var(axis=0), rtol=1e-12)

    # Many passes over the same batch: the running values converge to the batch's, and
    # inference then reproduces training.
    for _ in range(300):
        net.forward(X, training=True)
    np.testing.assert_allclose(bn.running_mean, Z.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(net.forward(X), training, rtol=1e-7)


# ----------------------------------------------------------------- dropout
def test_dropout_is_off_at_inference(rng):
    with_dropout = MLP(N_INPUTS, (50, 50), N_OUTPUTS, loss="ce", dropout=0.5, seed=4)
    without = MLP(N_INPUTS, (50, 50), N_OUTPUTS, loss="ce", seed=4)
    X = rng.normal(size=(N_SAMPLES, N_INPUTS))
    np.testing.assert_array_equal(with_dropout.forward(X), with_dropout.forward(X))
    np.testing.assert_array_equal(with_dropout.forward(X), without.forward(X))
    assert not np.allclose(with_dropout.forward(X, training=True), without.forward(X))
    assert not np.allclose(
        with_dropout.forward(X, training=True), with_dropout.forward(X, training=True)
    )


# ----------------------------------------------------------------- initialisers
STD = {  # standard deviation of each initialiser for (fan_in, fan_out)
    "he_normal": lambda i, o: math.sqrt(2 / i),
    "he_uniform": lambda i, o: math.sqrt(2 / i),
    "glorot_normal": lambda i, o: math.sqrt(2 / (i + o)),
    "glorot_uniform": lambda i, o: math.sqrt(2 / (i + o)),
}


def _check_init(W: np.ndarray, init: str) -> None:
    fan_in, fan_out = W.shape
    assert W.std() == pytest.approx(STD[init](fan_in, fan_out), rel=0.03), init
    limit = math.sqrt(3) * STD[init](fan_in, fan_out)  # a uniform's bound
    if init.endswith("uniform"):
        assert np.abs(W).max() <= limit
    else:
        assert np.abs(W).max() > 1.5 * limit


RELU_FAMILY = {"relu", "leaky_relu", "softplus", "elu", "gelu"}


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS, ids=HIDDEN_ACTIVATIONS)
def test_initialiser_follows_the_activation(activation):
    """He for the relu family, Glorot for the saturating ones; biases at zero."""
    net = MLP(400, (300,), 200, activation, "identity", seed=0)
    W1, b1, W2, b2 = net.parameters()
    expected = "he_normal" if activation in RELU_FAMILY else "glorot_uniform"
    assert activations.get(activation).init == expected
    _check_init(W1, expected)
    _check_init(W2, "glorot_uniform")  # identity output
    assert not b1.any() and not b2.any()


@pytest.mark.parametrize(
    "init", list(initializers.INITIALIZERS), ids=list(initializers.INITIALIZERS)
)
def test_init_option_overrides_the_activation_default(init):
    net = MLP(400, (300,), 200, "relu", "identity", init=init, seed=0)
    _check_init(net.parameters()[0], init)
    _check_init(net.parameters()[2], init)


# ----------------------------------------------------------------- usage errors
BAD_OPTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "hidden_zero": (
        dict(hidden_layer_sizes=(5, 0)),
        r"--hidden sizes must be positive whole numbers; got 5,0\.",
    ),
    "hidden_negative": (
        dict(hidden_layer_sizes=(-3,)),
        r"--hidden sizes must be positive whole numbers; got -3\.",
    ),
    "residual_unequal_widths": (
        dict(hidden_layer_sizes=(8, 8, 4), residual=True),
        r"--residual needs equal hidden widths; hidden layer 3 maps 8 -> 4 units\. "
        r"Use e\.g\. --hidden 8,8,8\.",
    ),
    "residual_one_layer": (
        dict(hidden_layer_sizes=(8,), residual=True),
        r"--residual .* needs at least two hidden layers, e\.g\. --hidden 64,64\.",
    ),
    "unknown_activation": (
        dict(activation="relu6"),
        r"Unknown hidden activation 'relu6'; choose one of: identity, sigmoid, tanh, relu, "
        r"leaky_relu, softplus, elu, selu, mish, gelu\.",
    ),
    "softmax_hidden": (
        dict(activation="softmax"),
        r"Unknown hidden activation 'softmax'; choose one of: ",
    ),
    "activation_count": (
        dict(activation=["relu", "tanh", "relu"]),
        r"--activation gives 3 names for 2 hidden layers; give one name, or one per layer\.",
    ),
    "unknown_output_activation": (
        dict(output_activation="tanh"),
        r"Unknown output activation 'tanh'; choose one of: identity, sigmoid, softmax, relu, "
        r"softplus\.",
    ),
    "unknown_loss": (
        dict(loss="hinge"),
        r"Unknown loss 'hinge'; choose one of: bce, ce, huber, mae, mse\.",
    ),
    "loss_needs_its_output": (
        dict(loss="ce", output_activation="sigmoid"),
        r"Loss 'ce' needs output activation 'softmax', not 'sigmoid'; change --loss or "
        r"--output-activation\.",
    ),
    "unknown_init": (
        dict(init="lecun"),
        r"Unknown initializer 'lecun'; choose one of: glorot_normal, glorot_uniform, he_normal",
    ),
    "dropout_one": (dict(dropout=1.0), r"--dropout must be in \[0, 1\); got 1\.0\."),
    "dropout_negative": (dict(dropout=-0.1), r"--dropout must be in \[0, 1\); got -0\.1\."),
    "decay_negative": (dict(weight_decay=-1.0), r"--weight-decay must be >= 0; got -1\.0\."),
    "decay_nan": (dict(weight_decay=float("nan")), r"--weight-decay must be >= 0; got nan\."),
    "leaky_slope": (
        dict(activation="leaky_relu", leaky_relu_slope=1.5),
        r"--leaky-slope must be in \[0, 1\); got 1\.5\.",
    ),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS), ids=list(BAD_OPTIONS))
def test_bad_options_raise_usage_errors_that_say_what_to_do(case):
    kwargs, message = BAD_OPTIONS[case]
    with pytest.raises(UsageError, match=f"^{message}"):
        MLP(N_INPUTS, **{"hidden_layer_sizes": (5, 5), "n_outputs": N_OUTPUTS, **kwargs})


def test_one_activation_name_in_a_list_applies_to_every_layer():
    net = MLP(N_INPUTS, (5, 5, 5), N_OUTPUTS, activation=["tanh"], seed=0)
    assert net.architecture.activation == ("tanh", "tanh", "tanh")


@pytest.mark.parametrize(("n_inputs", "n_outputs"), [(0, 1), (3, 0)])
def test_a_network_needs_inputs_and_outputs(n_inputs, n_outputs):
    with pytest.raises(UsageError, match="at least one input and one output"):
        MLP(n_inputs, (5,), n_outputs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hidden_layer_sizes": ()},
        {"hidden_layer_sizes": (5, 3)},
        {"hidden_layer_sizes": (4, 4, 4), "batchnorm": True, "residual": True},
        {"hidden_layer_sizes": (6,), "batchnorm": True, "dropout": 0.2},
    ],
    ids=["linear", "two-hidden", "batchnorm-residual", "batchnorm-dropout"],
)
def test_state_shapes_match_the_built_network_without_allocating(kwargs: dict) -> None:
    from mlpcli.nn.network import n_parameters, state_shapes

    net = MLP(7, n_outputs=2, seed=0, **kwargs)
    built = {name: array.shape for name, array in net.state_arrays().items()}
    assert state_shapes(net.architecture) == built
    assert n_parameters(net.architecture) == sum(net.n_parameters())
