"""Where one optimizer step of the batch-32 case goes: the profile behind its floor share.

    python bench/stepcost.py [--threads 2] [--repeats 3]

Times, per step of the batch-32 case (100,000 x 100, hidden (256, 128), Adam, batch 32), the
whole `Trainer.fit` epoch, the network's forward + backward alone (`MLP._backprop` on one
batch), Adam's update alone (one flat buffer of 58,755 weights) and the matrix products alone
(the floor). What is left (batch gathering, the per-layer gradient norms, the loop) is the
difference. Medians of `--repeats` rounds in this process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES, make_data
from impls import Engine, GemmFloor


def measure(threads: int, repeats: int) -> dict[str, float]:
    """Microseconds per step of each part, medians over rounds."""
    from threadpoolctl import threadpool_limits

    from mlpcli import optimizers
    from mlpcli.nn.network import MLP

    case = CASES["batch32"]
    data = make_data(case)
    steps = -(-case.n_samples // (case.batch_size or case.n_samples))
    parts: dict[str, list[float]] = {"step": [], "gemm": [], "backprop": [], "adam": []}
    with threadpool_limits(limits=threads):
        engine, floor = Engine(case, data, threads), GemmFloor(case, data, threads)
        net = MLP(case.n_features, case.hidden, case.n_outputs, "relu", loss="ce", seed=0)
        adam = optimizers.get("adam", lr=case.lr)
        Xb, Yb = data.X[:32].copy(), data.Y[:32].copy()
        rng = np.random.default_rng(0)
        params, grads = [net.flat_params], [net.flat_grads]
        engine.run(0), floor.run(0), adam.step(params, grads)
        for _ in range(repeats):
            t = time.perf_counter()
            engine.run(0)
            parts["step"].append(time.perf_counter() - t)
            t = time.perf_counter()
            floor.run(0)
            parts["gemm"].append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(steps):
                net._backprop(Xb, Yb, None, True, rng)
            parts["backprop"].append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(steps):
                adam.step(params, grads)
            parts["adam"].append(time.perf_counter() - t)
    return {key: statistics.median(v) / steps * 1e6 for key, v in parts.items()}


def section(threads: int, repeats: int, load: Any = None) -> list[str]:
    us = measure(threads, repeats)
    rest = us["step"] - us["backprop"] - us["adam"]
    rows = [
        ("whole step (`Trainer.fit`)", us["step"]),
        ("forward + backward (`MLP._backprop`)", us["backprop"]),
        ("of which the matrix products (the floor, timed alone)", us["gemm"]),
        ("Adam's update (12 passes over 58,755 float32 weights)", us["adam"]),
        ("the rest: gathering the batch, gradient norms, the loop", rest),
    ]
    return [
        "## Batch 32: where one step goes",
        "",
        f"`python bench/stepcost.py --threads {threads} --repeats {repeats}`: microseconds per "
        f"step (median of {repeats} epochs of 3,125 steps; parts timed alone in one process"
        + (f"; 1-minute load average {load}" if load is not None else "")
        + ").",
        "",
        "| part | us per step | share of the step |",
        "| --- | --- | --- |",
        *[f"| {name} | {value:.0f} | {value / us['step']:.0%} |" for name, value in rows],
        "",
        f"Outside the matrix products, {1 - us['gemm'] / us['step']:.0%} of the step is cost "
        "that does not shrink with the batch (32 rows pay what 256 rows pay). NumPy runs one "
        "operation per pass over memory: Adam's rule is 12 such passes over the flat buffer, "
        "the loss and activations a few dozen small calls. Fusing them keeps the classic "
        "models' bits only in compiled code (the same operations in the same order), which "
        "this pure-NumPy engine does not have; folding or reordering them in NumPy would change "
        "the bits, which the classic models must keep (`bench/identity.py`).",
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import os

    print("\n".join(section(args.threads, args.repeats, f"{os.getloadavg()[0]:.1f}")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
