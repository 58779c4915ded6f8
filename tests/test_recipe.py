"""The quality recipe's member-batched layers and network: float64 central-difference gradient
checks for every layer kind and embedding, K batched members against K separate ones, the
data-dependent initialisation, parameter groups, PLE by hand, presets and state."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from mlpcli.errors import UsageError
from mlpcli.nn import activations
from mlpcli.nn.batched import (
    LAYERS,
    BatchEnsembleDense,
    CategoricalEmbedding,
    FeatureScale,
    MemberDense,
    MemberDropout,
    MemberLayer,
    ParametricActivation,
    PeriodicEmbedding,
    PiecewiseLinearEncoding,
)
from mlpcli.nn.recipe import (
    EMBEDDINGS,
    PRESETS,
    RecipeConfig,
    RecipeNet,
    preset,
    resolve_member_batches,
)

K, N, D = 2, 7, 3

#: Small float64 layers of every kind; `numeric` leaves column 2 as a pass-through "one-hot".
LAYER_CASES: dict[str, Callable[[], MemberLayer]] = {
    "scale": lambda: FeatureScale(K, D),
    "dense-ntk": lambda: MemberDense(K, D, 4),
    "dense-standard": lambda: MemberDense(K, D, 4, param="standard", bias_init="normal"),
    "be_dense-ntk": lambda: BatchEnsembleDense(K, D, 4),
    "be_dense-standard": lambda: BatchEnsembleDense(K, D, 4, param="standard", bias_init="zeros"),
    "act-selu": lambda: ParametricActivation(K, D, activations.get("selu")),
    "act-mish": lambda: ParametricActivation(K, D, activations.get("mish")),
    "dropout": lambda: MemberDropout(K, D, 0.3),
    "pbld": lambda: PeriodicEmbedding(K, D, numeric=[0, 1], n_frequencies=3, d_embedding=3),
    "ple": lambda: PiecewiseLinearEncoding(K, D, numeric=[0, 1], n_bins=4),
    "cat_embedding": lambda: CategoricalEmbedding(K, D, [(1, 3)], d_embedding=2),
}


def _bound(layer: MemberLayer, rng: np.random.Generator, X: np.ndarray) -> None:
    """Give the layer float64 parameters, initialised from X, then perturbed off the init."""
    params = [np.zeros(s.shape) for s in layer.specs()]
    layer.bind(params, [np.zeros(s.shape) for s in layer.specs()])
    layer.initialise(rng, X)
    for p in params:  # away from the initial values (alpha = 1, s = 1), so each term shows
        p += 0.3 * rng.normal(size=p.shape)


def test_every_layer_kind_has_a_gradient_case() -> None:
    assert {name.split("-")[0] for name in LAYER_CASES} == set(LAYERS)


@pytest.mark.parametrize("case", list(LAYER_CASES), ids=list(LAYER_CASES))
def test_layer_backward_matches_central_difference(
    case: str, rng: np.random.Generator, central_difference, relative_error
) -> None:
    layer = LAYER_CASES[case]()
    X = rng.normal(size=(K, N, D))
    _bound(layer, rng, X)
    X = rng.normal(size=(K, N, D)) * 1.5  # fresh points; PLE keeps its fitted edges
    V = rng.normal(size=(K, N, layer.n_out))

    def f() -> float:  # the same dropout mask every call
        return float(np.sum(V * layer.forward(X, True, np.random.default_rng(3))))

    layer.forward(X, True, np.random.default_rng(3))
    dX = layer.backward(V.copy())
    grads = [g.copy() for g in layer.grads]
    if case != "dense-ntk" or layer.input_grad:
        assert relative_error(dX, central_difference(f, X)) < 1e-6
    for p, g in zip(layer.params, grads, strict=True):
        assert relative_error(g, central_difference(f, p)) < 1e-6
        assert np.any(g != 0)


#: Whole networks: each embedding, with and without dropout, classification and regression.
NET_CASES = {
    "none-ce": dict(embedding="none", loss="ce"),
    "pbld-ce-dropout": dict(embedding="pbld", loss="ce", dropout=0.2),
    "ple-bce": dict(embedding="ple", loss="bce"),
    "pbld-mse-mish": dict(embedding="pbld", loss="mse", activation="mish"),
    "batch-ensemble-ce": dict(embedding="pbld", loss="ce", ensemble="batch"),
}


def small_config(**overrides) -> RecipeConfig:
    base = RecipeConfig(
        hidden_layer_sizes=(5, 4),
        pbld=replace(RecipeConfig().pbld, n_frequencies=3),
        ple=replace(RecipeConfig().ple, n_bins=4),
        dropout=0.0,
        n_members=K,
    )
    return replace(base, **overrides)


def _net(loss: str, n_outputs: int, seed: int = 0, **overrides) -> RecipeNet:
    net = RecipeNet(
        D, n_outputs, loss, small_config(**overrides), numeric=[0, 1], dtype="float64", seed=seed
    )
    net.initialise(np.random.default_rng(seed + 1).normal(size=(40, D)))
    return net


def _targets(loss: str, rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    if loss == "ce":
        return np.eye(k)[rng.integers(0, k, size=n)]
    if loss == "bce":
        return rng.integers(0, 2, size=(n, k)).astype(float)
    return rng.normal(size=(n, k))


@pytest.mark.parametrize("case", list(NET_CASES), ids=list(NET_CASES))
def test_network_gradient_matches_central_difference(
    case: str, rng: np.random.Generator, central_difference, relative_error
) -> None:
    """Every parameter of every member, label smoothing (ce/bce default 0.1) included."""
    options = dict(NET_CASES[case])
    loss = options.pop("loss")
    k = 1 if loss == "bce" else 3
    net = _net(loss, k, **options)
    net.flat_params += 0.05 * rng.normal(size=net.flat_params.shape)
    X, Y = rng.normal(size=(N, D)), _targets(loss, rng, N, k)

    def f() -> float:
        return net.loss_and_gradients(X, Y, True, np.random.default_rng(5))[0]

    analytic = net.loss_and_gradients(X, Y, True, np.random.default_rng(5))[1].copy()
    # The loss reported is the members' mean; the gradient is that of their sum, so each
    # member steps as if alone (K times the mean's gradient).
    numeric = K * central_difference(f, net.flat_params)
    assert relative_error(analytic, numeric) < 1e-6


def test_k_batched_members_equal_k_separate_members(rng: np.random.Generator) -> None:
    """Member k of a K = 3 net has the outputs and gradients of a lone net with its weights."""
    n_members = 3
    batched = _net("ce", 3, n_members=n_members)
    X, Y = rng.normal(size=(N, D)), _targets("ce", rng, N, 3)
    outputs = batched.member_outputs(X)
    batched.loss_and_gradients(X, Y)
    state = batched.state_arrays()
    grads = dict(zip(batched.param_names, [g.copy() for g in batched.gradients()], strict=True))
    for k in range(n_members):
        alone = _net("ce", 3, n_members=1)
        alone.load_state_arrays({name: a[k : k + 1] for name, a in state.items()})
        np.testing.assert_allclose(alone.member_outputs(X)[0], outputs[k], rtol=1e-12)
        alone.loss_and_gradients(X, Y)
        for name, g in zip(alone.param_names, alone.gradients(), strict=True):
            np.testing.assert_allclose(g[0], grads[name][k], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(batched.predict(X), outputs.mean(axis=0))


def test_disjoint_member_batches_give_each_member_its_own_rows(rng: np.random.Generator) -> None:
    """With member_batches="disjoint", member k of K = 3 gets the gradient a lone net with its
    weights gets on rows [k m, (k + 1) m) of the batch, and the trainer's batch is K x B."""
    n_members, m = 3, 4
    batched = _net("ce", 3, n_members=n_members, member_batches="disjoint")
    assert batched.trainer_batch_size() == n_members * batched.config.batch_size
    X, Y = rng.normal(size=(n_members * m + 2, D)), _targets("ce", rng, n_members * m + 2, 3)
    batched.loss_and_gradients(X, Y)
    state = batched.state_arrays()
    grads = dict(zip(batched.param_names, [g.copy() for g in batched.gradients()], strict=True))
    for k in range(n_members):
        alone = _net("ce", 3, n_members=1)
        alone.load_state_arrays({name: a[k : k + 1] for name, a in state.items()})
        alone.loss_and_gradients(X[k * m : (k + 1) * m], Y[k * m : (k + 1) * m])
        for name, g in zip(alone.param_names, alone.gradients(), strict=True):
            np.testing.assert_allclose(g[0], grads[name][k], rtol=1e-10, atol=1e-14)
    with pytest.raises(UsageError, match="member batches"):
        _net("ce", 3, member_batches="overlapping")
    split = _net("ce", 3, n_members=n_members, member_batches="split")
    assert split.trainer_batch_size() == split.config.batch_size


def test_auto_member_batches_split_only_tables_that_fill_k_batches() -> None:
    auto = RecipeConfig(n_members=5, batch_size=256, member_batches="auto")
    assert resolve_member_batches(auto, 5 * 256).member_batches == "split"
    assert resolve_member_batches(auto, 5 * 256 - 1).member_batches == "shared"
    one = replace(auto, n_members=1)
    assert resolve_member_batches(one, 10**6).member_batches == "shared"
    given = replace(auto, member_batches="disjoint")
    assert resolve_member_batches(given, 10).member_batches == "disjoint"
    assert RecipeConfig().member_batches == "auto"  # the recipe's default
    assert not RecipeNet(3, 2, "ce", auto)._disjoint  # unresolved, a net shares the batch


def test_members_differ_and_seeds_are_deterministic() -> None:
    a, b = _net("ce", 3, seed=4), _net("ce", 3, seed=4)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    W = a.state_arrays()[a.param_names[-2]]
    assert not np.allclose(W[0], W[1])  # the members start apart


def test_std_init_gives_unit_std_units_and_he_plus_bias_puts_kinks_in_the_data() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4)) * [1.0, 10.0, 0.1, 3.0]
    layer = MemberDense(2, 4, 6)
    _bound_fresh(layer, rng, X)
    W, b = layer.params
    Z = np.matmul(X, W / 2.0)  # g = 1/sqrt(4)
    np.testing.assert_allclose(Z.std(axis=1), 1.0, rtol=1e-12)
    # -b is a convex combination of 5 of each unit's values: inside its range.
    assert np.all((-b >= Z.min(axis=1)) & (-b <= Z.max(axis=1)))


def _bound_fresh(layer: MemberLayer, rng: np.random.Generator, X: np.ndarray) -> None:
    layer.bind(
        [np.zeros(s.shape) for s in layer.specs()], [np.zeros(s.shape) for s in layer.specs()]
    )
    layer.initialise(rng, np.broadcast_to(X, (layer.n_members, *X.shape)))


def test_parameter_groups_carry_realmlp_td_factors() -> None:
    net = RecipeNet(3, 2, "ce", replace(RecipeConfig(), hidden_layer_sizes=(4,)), seed=0)
    factors, decay = net.flat_lr_factors(), net.flat_decay_mask()
    expected = {"pbld": 0.1, "scale": 6.0, "dense.W": 1.0, "dense.b": 0.1, "act": 0.1}
    for name, p, s in zip(net.param_names, net.parameters(), _slices(net), strict=True):
        key = next(k for k in expected if k in name)
        assert np.all(factors[s] == expected[key]), name
        assert np.all(decay[s] == (0.0 if name.endswith("dense.b") else 1.0)), name
        assert p.size == s.stop - s.start


def _slices(net: RecipeNet) -> list[slice]:
    out, offset = [], 0
    for p in net.parameters():
        out.append(slice(offset, offset + p.size))
        offset += p.size
    return out


def test_ple_by_hand() -> None:
    """Edges 0, 1, 2, 3 (quantiles of 0..3): x = 1.5 -> (1, 0.5, 0); -1 -> (-1, 0, 0);
    5 -> (1, 1, 3): the first bin is open below, the last above."""
    layer = PiecewiseLinearEncoding(1, 1, n_bins=3)
    layer.initialise(np.random.default_rng(0), np.array([[[0.0], [1.0], [2.0], [3.0]]]))
    np.testing.assert_allclose(layer.edges, [[0.0, 1.0, 2.0, 3.0]])
    out = layer.forward(np.array([[[1.5], [-1.0], [5.0]]]), False, None)
    np.testing.assert_allclose(out[0, :, :3], [[1, 0.5, 0], [-1, 0, 0], [1, 1, 3]])
    np.testing.assert_allclose(out[0, :, 3], [1.5, -1.0, 5.0])  # the raw column follows


def test_ple_with_few_distinct_values_leaves_unused_bins_at_zero() -> None:
    layer = PiecewiseLinearEncoding(1, 1, n_bins=4)
    layer.initialise(np.random.default_rng(0), np.array([[[0.0], [1.0], [1.0], [0.0]]]))
    # Quantiles 0, 0, 0.5, 1, 1 -> edges 0, 0.5, 1: two bins used, two left at 0.
    np.testing.assert_allclose(layer.edges[0, :3], [0.0, 0.5, 1.0])
    out = layer.forward(np.array([[[0.5], [7.0]]]), False, None)
    np.testing.assert_allclose(out[0, :, :4], [[1, 0, 0, 0], [1, (7 - 0.5) / 0.5, 0, 0]])


def test_pbld_output_layout_keeps_raw_columns() -> None:
    layer = PeriodicEmbedding(1, 3, numeric=[0, 2], n_frequencies=2, d_embedding=4)
    X = np.random.default_rng(0).normal(size=(1, 5, 3))
    _bound_fresh(layer, np.random.default_rng(1), X[0])
    out = layer.forward(X, False, None)
    assert out.shape == (1, 5, 2 * 3 + 3)
    np.testing.assert_array_equal(out[..., 6:], X)
    w, b, V, c = layer.params  # column 2's embedding by hand
    x = X[0, :, 2][:, None]
    expected = np.cos(2 * math.pi * x * w[0, 1] + b[0, 1]) @ V[0, 1] + c[0, 1]
    np.testing.assert_allclose(out[0, :, 3:6], expected)


def test_state_round_trip_and_mismatch(rng: np.random.Generator) -> None:
    net = _net("bce", 1, embedding="ple")
    X = rng.normal(size=(N, D))
    other = RecipeNet(D, 1, "bce", small_config(embedding="ple"), [0, 1], "float64", seed=9)
    other.load_state_arrays(net.state_arrays())
    np.testing.assert_array_equal(other.member_outputs(X), net.member_outputs(X))
    with pytest.raises(ValueError, match="do not match the recipe"):
        _net("bce", 1, embedding="none").load_state_arrays(net.state_arrays())


def test_presets_and_config_round_trip() -> None:
    cls, reg = preset("realmlp_td", "classification"), preset("realmlp_td", "regression")
    assert (cls.activation, cls.lr, cls.label_smoothing) == ("selu", 0.04, 0.1)
    assert (reg.activation, reg.lr, reg.label_smoothing) == ("mish", 0.2, 0.0)
    assert (cls.beta2, cls.lr_schedule, cls.dropout_schedule) == (0.95, "coslog4", "flat_cos")
    assert preset("realmlp_td", "classification", n_members=5).n_members == 5
    assert RecipeConfig.from_dict(cls.to_dict()) == cls
    assert set(PRESETS) == {"realmlp_td"} and set(EMBEDDINGS) == {"none", "pbld", "ple"}


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="Unknown preset 'realmlp'; choose one of: realmlp_td"):
        preset("realmlp", "classification")
    with pytest.raises(UsageError, match="Unknown numeric embedding 'plr'"):
        RecipeNet(3, 2, "ce", replace(RecipeConfig(), embedding="plr"))
    with pytest.raises(UsageError, match="--ensemble must be at least 1"):
        RecipeNet(3, 2, "ce", replace(RecipeConfig(), n_members=0))
    with pytest.raises(UsageError, match="Unknown weight parametrisation 'mup'"):
        MemberDense(1, 3, 2, param="mup")


def test_use_before_initialise_is_refused() -> None:
    net = RecipeNet(3, 2, "ce", small_config(), seed=0)
    with pytest.raises(RuntimeError, match="initialise"):
        net.predict(np.zeros((2, 3)))


@pytest.mark.slow
def test_readme_recipe_example_runs() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    code = re.search(r"\n## Presets: .*?```python\n(.*?)```", readme, re.S)
    assert code
    exec(compile(code.group(1), "README.md", "exec"), {})


def test_batch_ensemble_members_share_one_matrix() -> None:
    """With r = s = 1 and equal biases, BatchEnsemble members are one layer copied K times;
    it holds one W for K members (K times fewer weights than packed members)."""
    rng = np.random.default_rng(0)
    X = np.broadcast_to(rng.normal(size=(6, D)), (3, 6, D))
    be, packed = BatchEnsembleDense(3, D, 4), MemberDense(3, D, 4)
    _bound_fresh(be, rng, X[0])
    _bound_fresh(packed, rng, X[0])
    W, r, s, b = be.params
    r[...], s[...], b[...] = 1.0, 1.0, b[0]
    packed.params[0][...], packed.params[1][...] = W, b
    np.testing.assert_allclose(be.forward(X, False, None), packed.forward(X, False, None))
    assert W.shape == (D, 4) and packed.params[0].shape == (3, D, 4)


def test_unknown_ensemble_kind_is_a_usage_error() -> None:
    message = "Unknown ensemble kind 'mixed'; choose one of: batch, packed"
    with pytest.raises(UsageError, match=message):
        RecipeNet(3, 2, "ce", replace(RecipeConfig(), ensemble="mixed"))


def _categorical_net(seed: int = 0, **overrides) -> tuple[RecipeNet, np.ndarray]:
    """5 inputs: a numeric column, then a 4-level one-hot block (embedded: more than 2 levels)."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, 4, size=40)
    X = np.column_stack([rng.normal(size=40), np.eye(4)[levels]])
    config = small_config(max_one_hot=2, cat_embedding=3, **overrides)
    net = RecipeNet(5, 3, "ce", config, [0], "float64", seed=seed, categorical=[(1, 5)])
    net.initialise(X)
    return net, X


@pytest.mark.parametrize("embedding", ["none", "pbld"])
def test_categorical_embedding_network_gradient(
    embedding: str, rng: np.random.Generator, central_difference, relative_error
) -> None:
    net, X = _categorical_net(embedding=embedding)
    assert any(isinstance(layer, CategoricalEmbedding) for layer in net.layers)
    net.flat_params += 0.05 * rng.normal(size=net.flat_params.shape)
    Y = _targets("ce", rng, len(X), 3)

    def f() -> float:
        return net.loss_and_gradients(X, Y, True, np.random.default_rng(5))[0]

    analytic = net.loss_and_gradients(X, Y, True, np.random.default_rng(5))[1].copy()
    assert relative_error(analytic, K * central_difference(f, net.flat_params)) < 1e-6


def test_categorical_embedding_is_a_lookup_of_the_level_row() -> None:
    layer = CategoricalEmbedding(1, 4, [(1, 4)], d_embedding=2)
    E = np.arange(6.0).reshape(1, 3, 2)
    layer.bind([E], [np.zeros_like(E)])
    X = np.array([[[5.0, 0.0, 1.0, 0.0], [7.0, 0.0, 0.0, 1.0]]])  # levels 1 and 2
    out = layer.forward(X, False, None)
    np.testing.assert_array_equal(out, [[[5.0, 2.0, 3.0], [7.0, 4.0, 5.0]]])


def test_few_levels_stay_one_hot() -> None:
    config = small_config(max_one_hot=4)
    net = RecipeNet(5, 3, "ce", config, [0], "float64", seed=0, categorical=[(1, 5)])
    assert not any(isinstance(layer, CategoricalEmbedding) for layer in net.layers)


def test_regression_outputs_are_clamped_to_the_training_range() -> None:
    config = small_config(clamp_output=True, embedding="none")
    net = RecipeNet(D, 1, "mse", config, None, "float64", seed=0)
    net.initialise(np.random.default_rng(1).normal(size=(40, D)))
    net.set_output_range(np.array([[-0.5], [0.25], [0.1]]))
    out = net.member_outputs(np.random.default_rng(2).normal(size=(200, D)) * 50)
    assert out.min() >= -0.5 and out.max() <= 0.25
    assert np.isclose(out.min(), -0.5) or np.isclose(out.max(), 0.25)
    assert set(net.state_shapes()) == set(net.state_arrays())
    assert net.state_arrays()["output.low"].tolist() == [-0.5]


def test_bagged_member_gradient_is_that_of_its_own_rows(rng: np.random.Generator) -> None:
    """With per-member 0/1 weights (--bag), member k's gradient equals a lone net's on the
    rows member k keeps, however many of them a batch holds."""
    batched = _net("ce", 3, n_members=2)
    X, Y = rng.normal(size=(N, D)), _targets("ce", rng, N, 3)
    keep = np.array([[1, 0], [1, 1], [0, 1], [1, 1], [1, 0], [0, 1], [1, 1]], dtype=float)
    batched._backprop(X, Y, keep, False, None)
    grads = dict(zip(batched.param_names, [g.copy() for g in batched.gradients()], strict=True))
    state = batched.state_arrays()
    for k in range(2):
        alone = _net("ce", 3, n_members=1)
        alone.load_state_arrays({name: a[k : k + 1] for name, a in state.items()})
        rows = keep[:, k] == 1
        alone._backprop(X[rows], Y[rows], None, False, None)
        for name, g in zip(alone.param_names, alone.gradients(), strict=True):
            np.testing.assert_allclose(g[0], grads[name][k], rtol=1e-10, atol=1e-14)


def test_sampled_member_batches_give_each_member_its_own_random_share(
    rng: np.random.Generator,
) -> None:
    """With member_batches="sample", member k of K = 3 gets the gradient a lone net with its
    weights gets on its own ceil(share x n) rows of the batch, drawn from the step's rng."""
    n_members, n = 3, 10
    batched = _net("ce", 3, n_members=n_members, member_batches="sample", member_share=0.4)
    assert batched.trainer_batch_size() == batched.config.batch_size
    X, Y = rng.normal(size=(n, D)), _targets("ce", rng, n, 3)
    rows = batched._sampled_rows(n, np.random.default_rng(9))
    assert rows.shape == (n_members, 4)  # ceil(0.4 x 10)
    assert all(len(set(r)) == 4 for r in rows.tolist()) and len({tuple(r) for r in rows}) > 1
    batched.loss_and_gradients(X, Y, rng=np.random.default_rng(9))
    state = batched.state_arrays()
    grads = dict(zip(batched.param_names, [g.copy() for g in batched.gradients()], strict=True))
    for k in range(n_members):
        alone = _net("ce", 3, n_members=1)
        alone.load_state_arrays({name: a[k : k + 1] for name, a in state.items()})
        alone.loss_and_gradients(X[rows[k]], Y[rows[k]])
        for name, g in zip(alone.param_names, alone.gradients(), strict=True):
            np.testing.assert_allclose(g[0], grads[name][k], rtol=1e-10, atol=1e-14)


def test_a_full_member_share_is_the_shared_batch(rng: np.random.Generator) -> None:
    X, Y = rng.normal(size=(N, D)), _targets("ce", rng, N, 3)
    shared = _net("ce", 3, n_members=2, member_batches="shared")
    whole = _net("ce", 3, n_members=2, member_batches="sample", member_share=1.0)
    expected = shared.loss_and_gradients(X, Y)[1].copy()
    np.testing.assert_array_equal(whole.loss_and_gradients(X, Y)[1], expected)
    with pytest.raises(UsageError, match="member share must be in"):
        _net("ce", 3, member_batches="sample", member_share=0.0)
