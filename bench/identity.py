"""Bit-identity check of the classic engine across commits: same data, options, seed -> same bytes.

    python bench/identity.py save /tmp/new.npz                     # train every configuration
    python bench/identity.py save /tmp/old.npz /path/to/old/checkout  # mlpcli from there
    python bench/identity.py compare /tmp/old.npz /tmp/new.npz     # exit 1 on any difference

Trains small networks with every optimizer and the layer kinds, losses and trainer options
that take their own code paths (batch norm, dropout, residual, L2, clip-norm, sample weights,
a last short batch, a schedule, float64, the main case's shapes at batch 32), and stores the
final weights, the best-epoch weights and the per-epoch history of each. Speed work on the
engine must leave all of them unchanged byte for byte.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

CONFIGS: dict[str, dict[str, Any]] = {
    **{
        f"opt-{name}": {"optimizer": name, "batch_size": None if full else 37}
        for name, full in (
            ("gd", True),
            ("sgd", False),
            ("momentum", False),
            ("nesterov", False),
            ("rmsprop", False),
            ("adam", False),
            ("adamw", False),
            ("rprop", True),
        )
    },
    "adam-batch32-ce": {"optimizer": "adam", "batch_size": 32},
    "adam-batchnorm-dropout": {"optimizer": "adam", "batchnorm": True, "dropout": 0.2},
    "adam-residual-l2": {"optimizer": "adam", "residual": True, "weight_decay": 1e-3},
    "adam-clip-weights": {"optimizer": "adam", "clip_norm": 0.5, "weights": True},
    "sgd-mse-tanh": {"optimizer": "sgd", "loss": "mse", "activation": "tanh"},
    "adam-bce": {"optimizer": "adam", "loss": "bce"},
    "adam-schedule-cosine": {"optimizer": "adam", "schedule": "cosine"},
    "adamw-float64": {"optimizer": "adamw", "dtype": "float64"},
    "momentum-val-patience": {"optimizer": "momentum", "val": True, "patience": 2},
    # The main case's shapes at batch 32 (BLAS-sized products, 10 classes: the loss's wide-row
    # path) on 16,385 rows: 513 batches an epoch, so the history's norms are sampled.
    "adam-main-shapes-batch32": {
        "optimizer": "adam",
        "batch_size": 32,
        "rows": 16_385,
        "features": 100,
        "classes": 10,
        "hidden": (256, 128),
        "epochs": 1,
    },
}


def train(name: str, cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    from mlpcli import optimizers, schedules
    from mlpcli.nn.network import MLP
    from mlpcli.training import FitOptions, Trainer

    rng = np.random.default_rng(7)
    # 301 rows: every mini-batch size leaves a short last batch
    n, d = cfg.get("rows", 301), cfg.get("features", 12)
    X = rng.standard_normal((n, d)).astype(np.float32)
    loss = cfg.get("loss", "ce")
    k = 1 if loss == "mse" else cfg.get("classes", 3) if loss == "ce" else 2
    T = X[:, :k] + 0.3 * X[:, k : 2 * k] ** 2
    if loss == "ce":
        Y = np.eye(k, dtype=np.float32)[T.argmax(axis=1)]
    elif loss == "bce":
        Y = (T > 0).astype(np.float32)
    else:
        Y = T.astype(np.float32)
    hidden = cfg.get("hidden", (16, 16) if cfg.get("residual") else (16, 8))
    net = MLP(
        d,
        hidden,
        k,
        cfg.get("activation", "relu"),
        loss=loss,
        dtype=cfg.get("dtype", "float32"),
        seed=3,
        batchnorm=cfg.get("batchnorm", False),
        dropout=cfg.get("dropout", 0.0),
        residual=cfg.get("residual", False),
        weight_decay=cfg.get("weight_decay", 0.0),
    )
    optimizer = optimizers.get(cfg["optimizer"])
    epochs = cfg.get("epochs", 12)
    schedule = None
    if "schedule" in cfg:
        schedule = schedules.get(cfg["schedule"], optimizer.lr, epochs)
    val = cfg.get("val", False)
    options = FitOptions(
        epochs=epochs,
        batch_size=cfg.get("batch_size", 37),
        patience=cfg.get("patience"),
        monitor="val_loss" if val else "train_loss",
        clip_norm=cfg.get("clip_norm"),
    )
    trainer = Trainer(net, optimizer, options, np.random.default_rng(11), schedule=schedule)
    weights = rng.uniform(0.5, 2.0, n).astype(np.float32) if cfg.get("weights") else None
    cut = 241 if val else n
    result = trainer.fit(
        X[:cut], Y[:cut], X[cut:] if val else None, Y[cut:] if val else None, weights
    )
    arrays = {f"{name}/{key}": value for key, value in net.state_arrays().items()}
    history = [record.to_dict() for record in result.history]
    for record in history:
        record.pop("seconds")
    arrays[f"{name}/history"] = np.frombuffer(json.dumps(history).encode(), dtype=np.uint8)
    arrays[f"{name}/flat_params"] = net.flat_params.copy()
    return arrays


def save(path: str) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, cfg in CONFIGS.items():
        arrays.update(train(name, cfg))
    np.savez(path, **arrays)
    import mlpcli

    print(
        f"mlpcli from {mlpcli.__file__}: saved {len(CONFIGS)} configurations "
        f"({len(arrays)} arrays) to {path}"
    )


def compare(a_path: str, b_path: str) -> int:
    a, b = np.load(a_path), np.load(b_path)
    differ = [k for k in sorted(set(a.files) | set(b.files)) if k not in a or k not in b]
    for key in sorted(set(a.files) & set(b.files)):
        x, y = a[key], b[key]
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            differ.append(key)
    if differ:
        print(f"{len(differ)} of {len(a.files)} arrays differ: {', '.join(differ[:20])}")
        return 1
    print(f"all {len(a.files)} arrays of {len(CONFIGS)} configurations are identical byte for byte")
    return 0


def use_checkout(src: str) -> None:
    """Import mlpcli from the checkout `src`, ahead of an editable install's import hook."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__name__.lower()]
    sys.path.insert(0, src)


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "save":
        if len(sys.argv) == 4:
            use_checkout(sys.argv[3])
        save(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
