"""Optimizers against their update rules written out by hand (scikit-learn's
test_stochastic_optimizers.py), plus dtype, multi-array, checkpoint and validation behaviour."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from mlpcli import config, optimizers
from mlpcli.errors import ModelFileError, UsageError

Array = NDArray[np.floating]
NAMES = list(optimizers.OPTIMIZERS)

# Small explicit arrays: zeros, repeated signs and sign changes across three steps.
W0 = np.array([0.5, -1.0, 2.0, 0.0])
GRADS = [
    np.array([0.2, -0.4, 0.0, 1.0]),
    np.array([0.1, 0.3, -0.5, 1.0]),
    np.array([-0.3, 0.3, 0.2, 1.0]),
]
LR = 0.1
# Non-default values, so a test fails if a hyperparameter is ignored.
HYPER: dict[str, dict[str, float]] = {
    "gd": {},
    "sgd": {},
    "momentum": {"momentum": 0.8},
    "nesterov": {"momentum": 0.7},
    "rmsprop": {"momentum": 0.6, "eps": 1e-3},
    "adam": {"beta1": 0.8, "beta2": 0.9, "eps": 1e-3},
    "adamw": {"beta1": 0.8, "beta2": 0.9, "eps": 1e-3, "weight_decay": 0.3},
    "rprop": {"eta_plus": 1.5, "eta_minus": 0.4, "step_min": 0.03, "step_max": 0.2},
}


# ------------------------------------------------------------------ the rules, by hand
def rule_gd(W: Array, grads: list[Array], lr: float) -> Array:
    for g in grads:
        W = W - lr * g
    return W


def rule_momentum(W: Array, grads: list[Array], lr: float, momentum: float) -> Array:
    M = np.zeros_like(W)
    for g in grads:
        M = momentum * M + g
        W = W - lr * M
    return W


def rule_nesterov(W: Array, grads: list[Array], lr: float, momentum: float) -> Array:
    M = np.zeros_like(W)
    for g in grads:
        M = momentum * M + g
        W = W - lr * (g + momentum * M)
    return W


def rule_rmsprop(W: Array, grads: list[Array], lr: float, momentum: float, eps: float) -> Array:
    V = np.zeros_like(W)
    for g in grads:
        V = momentum * V + (1 - momentum) * g**2
        W = W - lr * g / (np.sqrt(V) + eps)
    return W


def rule_adam(
    W: Array,
    grads: list[Array],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
) -> Array:
    M, V = np.zeros_like(W), np.zeros_like(W)
    for t, g in enumerate(grads, start=1):
        W = W - lr * weight_decay * W
        M = beta1 * M + (1 - beta1) * g
        V = beta2 * V + (1 - beta2) * g**2
        W = W - lr * (M / (1 - beta1**t)) / (np.sqrt(V / (1 - beta2**t)) + eps)
    return W


def rule_rprop(
    W: Array,
    grads: list[Array],
    lr: float,
    eta_plus: float,
    eta_minus: float,
    step_min: float,
    step_max: float,
) -> Array:
    """iRprop-, weight by weight."""
    W = W.copy()
    D = np.full_like(W, lr)
    g_prev = np.zeros_like(W)
    for grad in grads:
        for j in range(W.size):
            g = grad[j]
            if g * g_prev[j] > 0:
                D[j] = min(D[j] * eta_plus, step_max)
            elif g * g_prev[j] < 0:
                D[j] = max(D[j] * eta_minus, step_min)
                g = 0.0
            W[j] -= np.sign(g) * D[j]
            g_prev[j] = g
    return W


RULES: dict[str, Callable[..., Array]] = {
    "gd": rule_gd,
    "sgd": rule_gd,
    "momentum": rule_momentum,
    "nesterov": rule_nesterov,
    "rmsprop": rule_rmsprop,
    "adam": rule_adam,
    "adamw": rule_adam,
    "rprop": rule_rprop,
}


def run(name: str, W: Array, grads: list[Array], lr: float = LR, **hyper: float) -> Array:
    W = W.copy()
    opt = optimizers.get(name, lr=lr, **hyper)
    for g in grads:
        opt.step([W], [g])
    return W


# ------------------------------------------------------------------ registry and defaults
def test_registry_names() -> None:
    assert list(optimizers.OPTIMIZERS) == [
        "gd", "sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "rprop"
    ]  # fmt: skip
    assert all(cls.name == key for key, cls in optimizers.OPTIMIZERS.items())
    assert set(RULES) == set(optimizers.OPTIMIZERS)


def test_full_batch_only_and_config_agree() -> None:
    full = {name for name, cls in optimizers.OPTIMIZERS.items() if cls.full_batch_only}
    assert full == {"gd", "rprop"}
    assert full == set(config.FULL_BATCH_OPTIMIZERS)
    assert tuple(optimizers.OPTIMIZERS) == config.OPTIMIZERS


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gd", {"lr": 0.1}),
        ("sgd", {"lr": 0.01}),
        ("momentum", {"lr": 0.01, "momentum": 0.9}),
        ("nesterov", {"lr": 0.01, "momentum": 0.9}),
        ("rmsprop", {"lr": 0.001, "momentum": 0.9, "eps": 1e-8}),
        ("adam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
        ("adamw", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}),
        (
            "rprop",
            {"lr": 0.01, "eta_plus": 1.2, "eta_minus": 0.5, "step_min": 1e-6, "step_max": 50.0},
        ),
    ],
    ids=NAMES,
)
def test_defaults(name: str, expected: dict[str, float]) -> None:
    opt = optimizers.get(name)
    assert opt.lr == type(opt).default_lr == expected["lr"]
    assert opt.hyperparameters() == expected


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_rebuild_the_optimizer(name: str) -> None:
    opt = optimizers.get(name, lr=0.05, **HYPER[name])
    opt.lr = 0.001  # a schedule's change is not a constructor value
    rebuilt = optimizers.get(name, **opt.hyperparameters())
    assert rebuilt.hyperparameters() == opt.hyperparameters() == {"lr": 0.05, **HYPER[name]}
    assert json.loads(json.dumps(opt.hyperparameters())) == opt.hyperparameters()
    assert repr(opt).startswith(f"{type(opt).__name__}(lr=0.05")


# ------------------------------------------------------------------ update rules
# W0 = [1, -2], g = [0.5, -0.25], lr = 0.1, default hyperparameters, worked out on paper.
ONE_STEP = {
    "gd": [0.95, -1.975],  # W - 0.1*g
    "sgd": [0.95, -1.975],
    "momentum": [0.95, -1.975],  # M = g at the first step
    "nesterov": [0.905, -1.9525],  # W - 0.1*(g + 0.9*g)
    "rmsprop": [1 - 0.1 / np.sqrt(0.1), -2 + 0.1 / np.sqrt(0.1)],  # V = 0.1*g^2
    "adam": [0.9, -1.9],  # bias-corrected M/sqrt(V) = sign(g)
    "adamw": [0.999 - 0.1, -1.998 + 0.1],  # W*(1 - 0.1*0.01), then adam
    "rprop": [0.9, -1.9],  # W - sign(g)*lr
}


@pytest.mark.parametrize("name", NAMES)
def test_one_step_worked_by_hand(name: str) -> None:
    W = run(name, np.array([1.0, -2.0]), [np.array([0.5, -0.25])])
    np.testing.assert_allclose(W, ONE_STEP[name], rtol=1e-7)


@pytest.mark.parametrize("n_steps", [1, 3], ids=["one-step", "three-steps"])
@pytest.mark.parametrize("name", NAMES)
def test_steps_follow_the_rule(name: str, n_steps: int) -> None:
    grads = GRADS[:n_steps]
    expected = RULES[name](W0, grads, LR, **HYPER[name])
    np.testing.assert_allclose(run(name, W0, grads, **HYPER[name]), expected, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_updates_in_place_and_leaves_gradients_alone(name: str, rng: np.random.Generator) -> None:
    flat = rng.normal(size=10)
    params = [flat[:6].reshape(2, 3), flat[6:]]
    grads = [rng.normal(size=(2, 3)), rng.normal(size=4)]
    before, grads_before = flat.copy(), [g.copy() for g in grads]
    optimizers.get(name, lr=0.1).step(params, grads)
    assert np.all(flat != before), "every weight of the flat buffer moved through its view"
    for g, g0 in zip(grads, grads_before, strict=True):
        np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("name", NAMES)
def test_several_arrays_equal_one_flat_buffer(name: str, rng: np.random.Generator) -> None:
    shapes = [(3, 2), (2,), (2, 1), (1,)]
    sizes = [int(np.prod(s)) for s in shapes]
    flat = rng.normal(size=sum(sizes))
    flat_grads = [rng.normal(size=flat.size) for _ in range(4)]
    mask_values = [1.0, 0.0, 1.0, 0.0]  # as MLP.decay_masks(): weights yes, biases no

    def split(a: Array) -> list[Array]:
        return [
            p.reshape(s) for p, s in zip(np.split(a, np.cumsum(sizes)[:-1]), shapes, strict=True)
        ]

    many, one = flat.copy(), flat.copy()
    opt_many, opt_one = optimizers.get(name, lr=0.05), optimizers.get(name, lr=0.05)
    opt_many.decay_masks = mask_values
    opt_one.decay_masks = [
        np.concatenate([np.full(n, m) for n, m in zip(sizes, mask_values, strict=True)])
    ]
    for g in flat_grads:
        opt_many.step(split(many), split(g))
        opt_one.step([one], [g])
    np.testing.assert_array_equal(many, one)
    assert len(opt_many.state_dict()["arrays"]) == len(shapes) * len(type(opt_many).STATE)


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name: str) -> None:
    W = W0.astype(np.float32)
    opt = optimizers.get(name, lr=LR, **HYPER[name])
    for g in GRADS:
        opt.step([W], [g.astype(np.float32)])
    assert W.dtype == np.float32
    assert all(a.dtype == np.float32 for a in opt.state_dict()["arrays"].values())
    expected = RULES[name](W0, GRADS, LR, **HYPER[name])
    np.testing.assert_allclose(W, expected, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_float64_lr_does_not_upcast(name: str, rng: np.random.Generator) -> None:
    """A schedule may hand back np.float64; the float32 arithmetic must not change."""
    W = rng.normal(size=50).astype(np.float32)
    grads = [rng.normal(size=50).astype(np.float32) for _ in range(3)]
    results = []
    for lr in (0.0123, np.float64(0.0123)):
        V, opt = W.copy(), optimizers.get(name, lr=0.05)
        for g in grads:
            opt.lr = lr
            opt.step([V], [g])
        results.append(V)
    np.testing.assert_array_equal(results[0], results[1])


def test_step_refuses_misaligned_lists_without_touching_params() -> None:
    W = W0.copy()
    with pytest.raises(ValueError, match="2 gradients"):
        optimizers.get("adam").step([W], [GRADS[0], GRADS[1]])
    np.testing.assert_array_equal(W, W0)


# ------------------------------------------------------------------ rprop
def test_rprop_shrinks_and_skips_a_step_after_a_sign_change() -> None:
    W = np.array([0.0])
    opt = optimizers.get("rprop", lr=0.1)
    trajectory, steps = [], []
    for g in (1.0, 1.0, -1.0, -1.0, -1.0):
        opt.step([W], [np.array([g])])
        trajectory.append(W[0])
        steps.append(opt.state["step"][0][0])
    # D: 0.1; same sign -> 0.12; flip -> 0.06, no move, g forgotten; after the reset no
    # comparison -> 0.06 and a move; same sign again -> 0.072.
    np.testing.assert_allclose(steps, [0.1, 0.12, 0.06, 0.06, 0.072], rtol=1e-12)
    np.testing.assert_allclose(trajectory, [-0.1, -0.22, -0.22, -0.16, -0.088], rtol=1e-12)


def test_rprop_uses_only_the_sign_of_the_gradient() -> None:
    scaled = [g * 1e3 for g in GRADS]
    np.testing.assert_array_equal(run("rprop", W0, GRADS), run("rprop", W0, scaled))


def test_rprop_step_sizes_stay_within_bounds() -> None:
    grow, shrink = np.zeros(1), np.zeros(1)
    opt_grow, opt_shrink = optimizers.get("rprop", lr=1.0), optimizers.get("rprop", lr=1e-5)
    for k in range(40):
        opt_grow.step([grow], [np.ones(1)])  # D = 1.2^k until it hits 50 (k = 22)
        opt_shrink.step([shrink], [np.array([(-1.0) ** k])])  # halved every other step
    assert opt_grow.state["step"][0][0] == 50.0
    assert opt_shrink.state["step"][0][0] == 1e-6
    assert grow[0] == pytest.approx(-(sum(1.2**k for k in range(22)) + 18 * 50.0))


# ------------------------------------------------------------------ adamw's decay mask
def test_adamw_decays_where_the_mask_is_nonzero() -> None:
    """With g = 0 the adam step is 0, leaving W <- W - lr*wd*W: 2 - 0.1*0.5*2 = 1.9."""
    W, b = np.array([2.0, -4.0]), np.array([2.0])
    opt = optimizers.get("adamw", lr=0.1, weight_decay=0.5)
    opt.decay_masks = [np.array([1.0, 0.0]), 0.0]
    opt.step([W, b], [np.zeros(2), np.zeros(1)])
    np.testing.assert_array_equal(b, [2.0])
    np.testing.assert_allclose(W, [1.9, -4.0], rtol=1e-15)


def test_adamw_without_decay_is_adam_and_undecayed_parts_match_adam(
    rng: np.random.Generator,
) -> None:
    grads = [rng.normal(size=4) for _ in range(3)]
    mask = [np.array([1.0, 1.0, 0.0, 0.0])]
    adam, adamw_off, adamw_masked = W0.copy(), W0.copy(), W0.copy()
    opts = [optimizers.get("adam"), optimizers.get("adamw", weight_decay=0.0)]
    masked = optimizers.get("adamw", lr=0.001, weight_decay=0.2)
    masked.decay_masks = mask
    for g in grads:
        opts[0].step([adam], [g])
        opts[1].step([adamw_off], [g])
        masked.step([adamw_masked], [g])
    np.testing.assert_array_equal(adamw_off, adam)
    np.testing.assert_array_equal(adamw_masked[2:], adam[2:])
    expected = rule_adam(W0[:2], [g[:2] for g in grads], 0.001, 0.9, 0.999, 1e-8, 0.2)
    np.testing.assert_allclose(adamw_masked[:2], expected, rtol=1e-12)
    assert np.all(adamw_masked[:2] != adam[:2])


def test_adamw_array_masks_follow_lr_changes(rng: np.random.Generator) -> None:
    """An all-ones array mask must decay exactly like the scalar 1.0, whatever lr does."""
    W_array, W_scalar = W0.copy(), W0.copy()
    opt_array = optimizers.get("adamw", weight_decay=0.5)
    opt_scalar = optimizers.get("adamw", weight_decay=0.5)
    opt_array.decay_masks, opt_scalar.decay_masks = [np.ones(4)], [1.0]
    for lr in (0.1, 0.1, 0.01, 0.001):
        g = rng.normal(size=4)
        opt_array.lr = opt_scalar.lr = lr
        opt_array.step([W_array], [g])
        opt_scalar.step([W_scalar], [g])
        np.testing.assert_array_equal(W_array, W_scalar)


def test_adamw_refuses_a_mask_list_of_the_wrong_length() -> None:
    opt = optimizers.get("adamw")
    opt.decay_masks = [1.0, 0.0]
    with pytest.raises(ValueError, match="2 decay masks for 1 parameter"):
        opt.step([W0.copy()], [GRADS[0]])


# ------------------------------------------------------------------ checkpoints
def _through_files(state: dict) -> dict:
    """What a checkpoint keeps: scalars through JSON, arrays through an .npz file."""
    buf = io.BytesIO()
    np.savez(buf, **state["arrays"])
    buf.seek(0)
    with np.load(buf) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return {
        "optimizer": state["optimizer"],
        "scalars": json.loads(json.dumps(state["scalars"], allow_nan=False)),
        "arrays": arrays,
    }


@pytest.mark.parametrize("stop_after", [0, 2], ids=["before-first-step", "mid-run"])
@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_resume_is_bit_identical(
    name: str, stop_after: int, rng: np.random.Generator
) -> None:
    params = [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)]
    grads = [[rng.normal(size=p.shape).astype(np.float32) for p in params] for _ in range(6)]
    lrs = [0.05, 0.05, 0.02, 0.02, 0.01, 0.01]  # as a schedule would set them

    def steps(opt: optimizers.Optimizer, ps: list[Array], which: range) -> None:
        opt.decay_masks = [1.0, 0.0]
        for k in which:
            opt.lr = lrs[k]
            opt.step(ps, grads[k])

    straight = [p.copy() for p in params]
    steps(optimizers.get(name, lr=0.05, **HYPER[name]), straight, range(6))

    resumed = [p.copy() for p in params]
    first = optimizers.get(name, lr=0.05, **HYPER[name])
    steps(first, resumed, range(stop_after))
    second = optimizers.get(name, **first.hyperparameters())
    second.load_state_dict(_through_files(first.state_dict()))
    assert second.t == stop_after
    steps(second, resumed, range(stop_after, 6))
    for a, b in zip(resumed, straight, strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_dict_layout() -> None:
    opt = optimizers.get("adam", lr=0.01)
    opt.step([W0.copy(), np.ones(2)], [GRADS[0], np.ones(2)])
    state = opt.state_dict()
    assert state["optimizer"] == "adam"
    assert state["scalars"] == {"t": 1, "lr": 0.01}
    assert sorted(state["arrays"]) == ["m.0", "m.1", "v.0", "v.1"]
    np.testing.assert_allclose(state["arrays"]["m.0"], 0.1 * GRADS[0])
    opt.step([W0.copy(), np.ones(2)], [GRADS[0], np.ones(2)])
    np.testing.assert_allclose(state["arrays"]["m.0"], 0.1 * GRADS[0])  # a copy, not the live M


def test_load_refuses_another_optimizers_state() -> None:
    state = optimizers.get("adam").state_dict()
    with pytest.raises(UsageError, match="--optimizer adam"):
        optimizers.get("sgd").load_state_dict(state)


def test_load_refuses_incomplete_state() -> None:
    opt = optimizers.get("adam")
    opt.step([W0.copy()], [GRADS[0]])
    state = opt.state_dict()
    del state["arrays"]["v.0"]
    with pytest.raises(ModelFileError, match="expected 2 per parameter"):
        optimizers.get("adam").load_state_dict(state)
    with pytest.raises(ModelFileError, match="incomplete"):
        optimizers.get("adam").load_state_dict({"optimizer": "adam", "scalars": {}})


def test_loaded_state_of_another_shape_is_refused_at_the_next_step() -> None:
    opt = optimizers.get("momentum")
    opt.step([W0.copy()], [GRADS[0]])
    other = optimizers.get("momentum")
    other.load_state_dict(opt.state_dict())
    with pytest.raises(ModelFileError, match=r"'m.0' has shape \(4,\), the parameter \(3,\)"):
        other.step([np.zeros(3)], [np.zeros(3)])


# ------------------------------------------------------------------ user errors
def test_unknown_optimizer_lists_the_choices() -> None:
    with pytest.raises(UsageError, match="Unknown optimizer 'adagrad'; choose one of: adam, "):
        optimizers.get("adagrad")


@pytest.mark.parametrize(
    ("name", "hyper", "message"),
    [
        ("sgd", {"lr": 0.0}, "--lr must be > 0"),
        ("adam", {"lr": -1e-3}, "--lr must be > 0"),
        ("adam", {"lr": float("nan")}, "--lr must be finite"),
        ("adam", {"lr": "fast"}, "--lr must be a number; got 'fast'"),
        ("momentum", {"momentum": 1.0}, "--momentum must be >= 0 and < 1"),
        ("rmsprop", {"momentum": -0.1}, "--momentum must be >= 0 and < 1"),
        ("adam", {"beta1": 1.0}, "--beta1 must be >= 0 and < 1"),
        ("adamw", {"beta2": 1.5}, "--beta2 must be >= 0 and < 1"),
        ("rmsprop", {"eps": 0.0}, "--eps must be > 0"),
        ("adamw", {"weight_decay": -0.1}, "--weight-decay must be >= 0"),
        ("rprop", {"eta_plus": 1.0}, "--eta-plus must be > 1"),
        ("rprop", {"eta_minus": 1.0}, "--eta-minus must be > 0 and < 1"),
        ("rprop", {"step_min": 0.0}, "--step-min must be > 0"),
        ("rprop", {"step_min": 2.0, "step_max": 1.0}, r"--step-min \(2\) must not exceed"),
        ("rprop", {"lr": 100.0}, r"--lr is rprop's initial step size .* got 100"),
        ("sgd", {"momentum": 0.9}, "--momentum does not apply to optimizer 'sgd'; it takes --lr"),
        ("adam", {"weight_decay": 0.1}, "--weight-decay does not apply to optimizer 'adam'"),
        ("nesterov", {"betta": 0.9}, "--betta does not apply to optimizer 'nesterov'"),
    ],
)
def test_bad_hyperparameters_name_the_option(name: str, hyper: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        optimizers.get(name, **hyper)


# ------------------------------------------------------------------ parameter groups
#: Per-weight learning-rate factors, as RealMLP-TD's groups give them (scale 6, bias 0.1, 1).
FACTORS = np.array([6.0, 0.1, 1.0, 0.5])


def test_adam_lr_factors_follow_the_rule_weight_by_weight() -> None:
    """Each weight steps as plain Adam with lr*f_j; beta2 0.95 as in RealMLP-TD."""
    W = W0.copy()
    opt = optimizers.get("adam", lr=LR, beta2=0.95)
    opt.lr_factors = [FACTORS]
    for g in GRADS:
        opt.step([W], [g])
    for j, f in enumerate(FACTORS):
        expected = rule_adam(W0[j : j + 1], [g[j : j + 1] for g in GRADS], LR * f, 0.9, 0.95, 1e-8)
        np.testing.assert_allclose(W[j], expected[0], rtol=1e-12)


def test_adamw_lr_factors_scale_the_decay_too() -> None:
    """pytabkit's rule: W <- W (1 - lr f wd) where decayed, then Adam with lr f."""
    W = W0.copy()
    opt = optimizers.get("adamw", lr=LR, weight_decay=0.3, beta2=0.95)
    opt.lr_factors = [FACTORS]
    opt.decay_masks = [np.array([1.0, 0.0, 1.0, 1.0])]
    for g in GRADS:
        opt.step([W], [g])
    for j, f in enumerate(FACTORS):
        wd = 0.0 if j == 1 else 0.3
        expected = rule_adam(
            W0[j : j + 1], [g[j : j + 1] for g in GRADS], LR * f, 0.9, 0.95, 1e-8, wd
        )
        np.testing.assert_allclose(W[j], expected[0], rtol=1e-12)


def test_adamw_decay_follows_a_weight_decay_schedule() -> None:
    """Changing weight_decay between steps (a flat-then-cosine schedule) takes effect."""
    W = np.array([2.0])
    opt = optimizers.get("adamw", lr=0.1, weight_decay=0.5)
    opt.lr_factors = [np.array([2.0])]
    opt.step([W], [np.zeros(1)])
    opt.weight_decay = 0.25
    opt.step([W], [np.zeros(1)])
    np.testing.assert_allclose(W, [2.0 * (1 - 0.1 * 2.0 * 0.5) * (1 - 0.1 * 2.0 * 0.25)])


def test_unit_lr_factors_equal_no_factors(rng: np.random.Generator) -> None:
    grads = [rng.normal(size=4) for _ in range(3)]
    for name in ("adam", "adamw"):
        plain, grouped = W0.copy(), W0.copy()
        a, b = optimizers.get(name), optimizers.get(name)
        b.lr_factors = [np.ones(4)]
        for g in grads:
            a.step([plain], [g])
            b.step([grouped], [g])
        np.testing.assert_allclose(grouped, plain, rtol=1e-15)
