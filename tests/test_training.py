"""The training loop: learning, early stopping, determinism, divergence, interruption, resume."""

from __future__ import annotations

import numpy as np
import pytest

from mlpcli import optimizers, schedules
from mlpcli.errors import DivergenceError, UsageError
from mlpcli.nn import MLP
from mlpcli.training import FitOptions, Trainer, evaluate_loss


def _xor() -> tuple[np.ndarray, np.ndarray]:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    Y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return X, Y


def _sine(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-np.pi, np.pi, size=(n, 1))
    Y = np.sin(X) + rng.normal(0, 0.1, size=(n, 1))
    return X.astype(np.float32), Y.astype(np.float32)


def _trainer(net: MLP, name: str = "adam", seed: int = 0, **options: object) -> Trainer:
    return Trainer(net, optimizers.get(name), FitOptions(**options), np.random.default_rng(seed))


def test_learns_xor_with_2_4_1_tanh() -> None:
    X, Y = _xor()
    net = MLP(2, (4,), 1, activation="tanh", loss="bce", seed=3)
    trainer = Trainer(
        net,
        optimizers.get("adam", lr=0.05),
        FitOptions(epochs=1500, batch_size=None, monitor="train_loss", patience=None),
        np.random.default_rng(0),
    )
    trainer.fit(X, Y)
    P = net.forward(X)
    assert ((P >= 0.5) == (Y >= 0.5)).all(), P.ravel()


def test_fits_noisy_sine_to_r2_above_095() -> None:
    X, Y = _sine()
    X_val, Y_val = _sine(200, seed=1)
    net = MLP(1, (32, 32), 1, activation="tanh", seed=0)
    trainer = Trainer(
        net,
        optimizers.get("adam", lr=0.01),
        FitOptions(epochs=300, batch_size=32, patience=30),
        np.random.default_rng(0),
    )
    trainer.fit(X, Y, X_val, Y_val)
    P = net.forward(X_val)
    r2 = 1 - np.sum((Y_val - P) ** 2) / np.sum((Y_val - Y_val.mean()) ** 2)
    assert r2 > 0.95


def test_history_records_every_tracked_value() -> None:
    X, Y = _sine(100)
    net = MLP(1, (8, 8), 1, activation="tanh", seed=0)
    seen = []
    trainer = Trainer(
        net,
        optimizers.get("sgd", lr=0.05),
        FitOptions(epochs=5, batch_size=16),
        np.random.default_rng(0),
        metric=lambda Y, P: float(np.mean(Y - P)),
    )
    result = trainer.fit(X, Y, X[:20], Y[:20], callback=seen.append)
    assert [r.epoch for r in result.history] == [1, 2, 3, 4, 5]
    assert seen == result.history
    record = result.history[-1]
    assert len(record.grad_norms) == 3 and all(g > 0 for g in record.grad_norms)
    assert record.val_loss is not None and record.val_metric is not None
    assert record.lr == pytest.approx(0.05)
    assert result.stop_reason == "epoch_limit"
    assert record.seconds >= result.history[0].seconds


def test_early_stopping_restores_best_epoch_weights() -> None:
    X, Y = _sine(200)
    # A validation set from another function: validation loss soon gets worse.
    X_val = X[:50].copy()
    Y_val = -Y[:50]
    net = MLP(1, (16,), 1, activation="tanh", seed=0)
    trainer = _trainer(net, epochs=200, batch_size=32, patience=5)
    result = trainer.fit(X, Y, X_val, Y_val)
    assert result.stop_reason == "patience"
    best = min(result.history, key=lambda r: r.val_loss)
    assert result.best_epoch == best.epoch
    assert result.epochs_run == best.epoch + 5
    # The restored weights give exactly the best recorded validation loss.
    assert evaluate_loss(net, X_val, Y_val)[0] == pytest.approx(best.val_loss, rel=1e-6)


def test_min_delta_counts_small_gains_as_no_improvement() -> None:
    X, Y = _sine(100)
    net = MLP(1, (8,), 1, activation="tanh", seed=0)
    result = _trainer(net, epochs=50, batch_size=16, patience=3, min_delta=10.0).fit(X, Y, X, Y)
    assert result.best_epoch == 1 and result.epochs_run == 4


def test_same_seed_gives_identical_weights_and_other_seed_differs() -> None:
    X, Y = _sine(200)

    def run(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        net = MLP(1, (16, 8), 1, seed=rng, dropout=0.1)
        Trainer(net, optimizers.get("adam"), FitOptions(epochs=5, batch_size=16), rng).fit(
            X, Y, X[:40], Y[:40]
        )
        return net.flat_params.copy()

    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_divergence_raises_and_keeps_finite_best_weights() -> None:
    X, Y = _sine(100)
    Y = Y * 1e3
    net = MLP(1, (16,), 1, activation="relu", seed=0)
    trainer = Trainer(
        net,
        optimizers.get("sgd", lr=1e3),
        FitOptions(epochs=50, batch_size=10),
        np.random.default_rng(0),
    )
    with pytest.raises(DivergenceError, match="Lower the learning rate") as info:
        trainer.fit(X, Y, X[:20], Y[:20])
    assert np.isfinite(net.flat_params).all()
    assert info.value.result.stop_reason == "diverged"  # type: ignore[attr-defined]


def test_should_stop_interrupts_within_one_batch_and_restores_best() -> None:
    X, Y = _sine(200)
    net = MLP(1, (8,), 1, seed=0)
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) >= 25  # 200 / 20 = 10 batches per epoch: stops in epoch 3

    trainer = _trainer(net, epochs=100, batch_size=20)
    result = trainer.fit(X, Y, X[:50], Y[:50], should_stop=stop)
    assert result.stop_reason == "interrupted"
    assert len(calls) == 25 and result.epochs_run == 2
    assert evaluate_loss(net, X[:50], Y[:50])[0] == pytest.approx(
        result.best_record().val_loss, rel=1e-6
    )


@pytest.mark.parametrize("name", ["gd", "rprop"])
def test_full_batch_optimizers_refuse_mini_batches(name: str) -> None:
    X, Y = _sine(100)
    net = MLP(1, (4,), 1, seed=0)
    with pytest.raises(UsageError, match="--batch-size full"):
        _trainer(net, name, epochs=2, batch_size=10, monitor="train_loss").fit(X, Y)


def test_rprop_trains_full_batch() -> None:
    X, Y = _sine(200)
    net = MLP(1, (16,), 1, activation="tanh", seed=0)
    result = _trainer(
        net, "rprop", epochs=100, batch_size=None, monitor="train_loss", patience=None
    ).fit(X, Y)
    assert result.history[-1].train_loss < 0.2 * result.history[0].train_loss


def test_gradient_clipping_bounds_the_update() -> None:
    X, Y = _sine(50)
    Y = Y * 100
    net = MLP(1, (4,), 1, seed=0)
    before = net.flat_params.copy()
    trainer = _trainer(net, "sgd", epochs=1, batch_size=None, monitor="train_loss", clip_norm=0.5)
    trainer.optimizer.lr = 1.0
    trainer.fit(X, Y)
    # One full-batch sgd step with lr 1 moves the weights by exactly the clipped gradient norm.
    assert np.linalg.norm(net.flat_params - before) == pytest.approx(0.5, rel=1e-4)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run() -> None:
    X, Y = _sine(200)

    def make(seed: int = 5) -> Trainer:
        rng = np.random.default_rng(seed)
        net = MLP(1, (8, 8), 1, seed=rng, dropout=0.1, batchnorm=True)
        opt = optimizers.get("adam")
        return Trainer(
            net,
            opt,
            FitOptions(epochs=8, batch_size=32, patience=None),
            rng,
            schedules.get("step", opt.lr, 8, step_size=2),
        )

    checkpoint = {}
    full = make()

    def save_at_epoch_3(record: object) -> None:
        if record.epoch == 3:  # type: ignore[attr-defined]
            checkpoint["state"] = full.state_dict()

    full.fit(X, Y, X[:40], Y[:40], callback=save_at_epoch_3)
    meta, arrays = checkpoint["state"]

    resumed = make(seed=99)  # different initial state: everything must come from the checkpoint
    resumed.load_state_dict(meta, arrays)
    result = resumed.fit(X, Y, X[:40], Y[:40])
    assert result.epochs_run == 8
    assert np.array_equal(resumed.net.flat_params, full.net.flat_params)
    assert [r.val_loss for r in result.history] == [r.val_loss for r in full.history]


def test_monitor_needs_validation() -> None:
    X, Y = _sine(50)
    with pytest.raises(UsageError, match="validation"):
        _trainer(MLP(1, (4,), 1, seed=0), epochs=1).fit(X, Y)


def test_fit_function_trains_in_one_call() -> None:
    from mlpcli.training import fit

    X, Y = _xor()
    net = MLP(2, (4,), 1, activation="tanh", loss="bce", seed=3)
    result = fit(net, X, Y, optimizer="adam", lr=0.05, epochs=1500, batch_size=None, patience=None)
    assert result.monitor == "train_loss" and result.epochs_run == 1500
    assert ((net.forward(X) >= 0.5) == (Y >= 0.5)).all()


# ----------------------------------------------------------------- the quality recipe's options
def _accuracy(Y: np.ndarray, P: np.ndarray) -> float:
    return float(np.mean((P >= 0.5) == (Y >= 0.5)))


@pytest.mark.parametrize(("ties", "expected"), [("earlier", "first"), ("later", "last")])
def test_ties_pick_the_earlier_or_the_later_epoch(ties: str, expected: str) -> None:
    """XOR learnt: validation accuracy stays at 1.0, a tie every epoch from the first 1.0 on."""
    X, Y = _xor()
    net = MLP(2, (8,), 1, activation="tanh", loss="bce", seed=3)
    trainer = Trainer(
        net,
        optimizers.get("adam", lr=0.05),
        FitOptions(epochs=400, batch_size=None, monitor="val_metric", patience=None, ties=ties),
        np.random.default_rng(0),
        metric=_accuracy,
    )
    result = trainer.fit(X, Y, X, Y)
    perfect = [r.epoch for r in result.history if r.val_metric == 1.0]
    assert perfect and perfect[-1] == 400
    assert result.best_epoch == (perfect[0] if expected == "first" else 400)


def test_unknown_tie_rule_is_refused() -> None:
    with pytest.raises(UsageError, match="Unknown tie rule 'middle'; choose one of: earlier"):
        _trainer(MLP(1, (2,), 1, seed=0), ties="middle")


@pytest.mark.parametrize(("n", "batch", "per_epoch"), [(10, 4, 3), (9, 4, 3), (10, 10, 1)])
def test_step_hook_sees_every_step_before_its_forward_pass(n: int, batch: int, per_epoch: int):
    X, Y = _sine(n)
    calls: list[tuple[int, int]] = []
    net = MLP(1, (3,), 1, seed=0)
    trainer = Trainer(
        net,
        optimizers.get("adam"),
        FitOptions(epochs=2, batch_size=batch, monitor="train_loss", patience=None),
        np.random.default_rng(0),
        step_hook=lambda step, total: calls.append((step, total)),
    )
    trainer.fit(X, Y)
    assert calls == [(s, 2 * per_epoch) for s in range(2 * per_epoch)]
    assert trainer.state_dict()[0]["steps"] == 2 * per_epoch


@pytest.mark.parametrize(("clip_norm", "every"), [(None, 2), (1e9, 1)])
def test_gradient_norms_average_every_kth_batch_of_a_long_epoch(
    clip_norm: float | None, every: int
) -> None:
    from mlpcli.training import NORM_SAMPLES

    n_batches = 2 * NORM_SAMPLES + 1  # every 2nd batch's norms; --clip-norm needs every one
    X, Y = _sine(n_batches)
    net = MLP(1, (3,), 1, seed=0)
    norms: list[list[float]] = []  # per batch, read before the next batch's forward pass
    trainer = Trainer(
        net,
        optimizers.get("sgd", lr=0.01),
        FitOptions(epochs=1, batch_size=1, monitor="train_loss", clip_norm=clip_norm),
        np.random.default_rng(0),
        step_hook=lambda step, total: norms.append(net.layer_grad_norms()) if step else None,
    )
    record = trainer.fit(X, Y).history[0]
    norms.append(net.layer_grad_norms())
    assert len(norms) == n_batches
    np.testing.assert_allclose(record.grad_norms, np.mean(norms[::every], axis=0), rtol=1e-5)
    other = norms[1::2] if every == 2 else norms[::2]
    assert not np.allclose(record.grad_norms, np.mean(other, axis=0), rtol=1e-5)


def test_plain_checkpoints_have_no_step_count() -> None:
    X, Y = _sine(20)
    trainer = _trainer(MLP(1, (3,), 1, seed=0), epochs=1, monitor="train_loss")
    trainer.fit(X, Y)
    assert "steps" not in trainer.state_dict()[0]


def test_recipe_schedules_set_lr_dropout_and_decay_per_step() -> None:
    from mlpcli.nn.recipe import RecipeConfig, RecipeNet
    from mlpcli.training import RecipeSchedules

    config = RecipeConfig(hidden_layer_sizes=(4,), embedding="none")
    net = RecipeNet(2, 2, "ce", config, seed=0)
    opt = optimizers.get("adamw", lr=config.lr, weight_decay=config.weight_decay)
    hook = RecipeSchedules(net, opt, config)
    coslog4, flat_cos = schedules.get_progress("coslog4"), schedules.get_progress("flat_cos")
    for step in (0, 10, 37, 75, 99):
        hook(step, 100)
        t = step / 100
        assert opt.lr == pytest.approx(0.04 * coslog4(t))
        assert opt.weight_decay == pytest.approx(0.02 * flat_cos(t))
        assert net.dropouts[0].p == pytest.approx(0.15 * flat_cos(t))


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 4 dimensions, one-hot targets."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    centres = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    return centres[labels] + rng.normal(size=(n, 4)), np.eye(3)[labels]


def test_fit_recipe_learns_and_is_deterministic() -> None:
    from mlpcli.nn.recipe import RecipeConfig
    from mlpcli.training import fit_recipe

    X, Y = _blobs(300, 0)
    X_val, Y_val = _blobs(200, 1)
    config = RecipeConfig(hidden_layer_sizes=(32, 32), epochs=12, batch_size=64, n_members=2)

    def accuracy(Y: np.ndarray, P: np.ndarray) -> float:
        return float(np.mean(P.argmax(axis=1) == Y.argmax(axis=1)))

    runs = [
        fit_recipe(X, Y, X_val, Y_val, loss="ce", config=config, seed=5, metric=accuracy)
        for _ in range(2)
    ]
    (net, result), (other, _) = runs
    np.testing.assert_array_equal(net.flat_params, other.flat_params)
    assert result.epochs_run == 12 and result.monitor == "val_metric"
    assert accuracy(Y_val, net.predict(X_val)) > 0.8  # Bayes accuracy here is about 0.9
    best = result.best_record()
    assert best is not None and best.val_metric == max(r.val_metric for r in result.history)
