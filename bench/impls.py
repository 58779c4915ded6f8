"""The implementations compared side by side, and the worker loop that runs one of them.

Each implementation trains a fresh network on a case (construction and fit timed together, as
a user pays for both) and returns the seconds and the final training loss. The driver
(`run.py`) starts one worker process per implementation and asks them in turn for one run, so
the runs interleave A B A B while each library keeps its own threads and memory to itself.

Worker protocol: `python bench/impls.py IMPL CASE THREADS` prints one JSON line when ready,
then answers each `run` line on stdin with a JSON line, until `quit`.
"""

from __future__ import annotations

import itertools
import json
import math
import resource
import sys
import time
import warnings
from typing import Any

import numpy as np
from cases import CASES, Case, CaseData, make_data

SEED = 1


class Impl:
    """Base class: `prepare` converts the data (untimed), `run` trains once (timed)."""

    key: str = ""
    label: str = ""

    def __init__(self, case: Case, data: CaseData, threads: int) -> None:
        self.case, self.threads = case, threads

    @staticmethod
    def missing() -> str | None:
        """Why this implementation cannot run here, or None."""
        return None

    def unsupported(self, case: Case) -> str | None:
        """Why this implementation cannot run this case, or None."""
        return None

    def run(self, seed: int) -> float:
        """Train once; returns the final epoch's training loss."""
        raise NotImplementedError

    @staticmethod
    def versions() -> dict[str, str]:
        return {}


# --------------------------------------------------------------------------- mlpcli
class Engine(Impl):
    """mlpcli's engine as the CLI drives it: MLP + optimizer + Trainer on float32 arrays."""

    key, label = "mlpcli", "mlpcli engine (float32)"

    def __init__(self, case: Case, data: CaseData, threads: int) -> None:
        super().__init__(case, data, threads)
        self.X, self.Y = data.X, data.Y

    def run(self, seed: int) -> float:
        from mlpcli import optimizers
        from mlpcli.nn.network import MLP
        from mlpcli.training import FitOptions, Trainer

        c = self.case
        loss = "ce" if c.task == "multiclass" else "mse"
        net = MLP(c.n_features, c.hidden, c.n_outputs, "relu", loss=loss, seed=seed)
        options = FitOptions(
            epochs=c.epochs, batch_size=c.batch_size, patience=None, monitor="train_loss"
        )
        optimizer = optimizers.get(c.optimizer, lr=c.lr)
        trainer = Trainer(net, optimizer, options, np.random.default_rng(seed))
        result = trainer.fit(self.X, self.Y)
        return result.history[-1].train_loss

    @staticmethod
    def versions() -> dict[str, str]:
        import mlpcli

        return {"mlpcli": mlpcli.__version__, "numpy": np.__version__}


class BareNumpy(Impl):
    """The same maths written as one tight NumPy loop with no framework around it: the
    reference for mlpcli's framework overhead. float32, parameters/gradients/Adam state in
    flat buffers, preallocated `out=` buffers, in-place relu, fused softmax + cross-entropy."""

    key, label = "numpy", "bare NumPy loop (float32)"

    def __init__(self, case: Case, data: CaseData, threads: int) -> None:
        super().__init__(case, data, threads)
        self.X, self.Y = data.X, data.Y

    def run(self, seed: int) -> float:
        c, X, Y = self.case, self.X, self.Y
        rng = np.random.default_rng(seed)
        sizes = [c.n_features, *c.hidden, c.n_outputs]
        pairs = list(itertools.pairwise(sizes))
        total = sum(a * b + b for a, b in pairs)
        params = np.empty(total, np.float32)
        grads = np.empty(total, np.float32)
        Ws, bs, dWs, dbs = [], [], [], []
        offset = 0
        for a, b in pairs:
            Ws.append(params[offset : offset + a * b].reshape(a, b))
            dWs.append(grads[offset : offset + a * b].reshape(a, b))
            offset += a * b
            bs.append(params[offset : offset + b])
            dbs.append(grads[offset : offset + b])
            offset += b
            Ws[-1][...] = rng.standard_normal((a, b)) * math.sqrt(2.0 / a)
            bs[-1][...] = 0.0
        n = X.shape[0]
        B = n if c.batch_size is None else min(c.batch_size, n)
        last = len(pairs) - 1
        classify = c.task == "multiclass"
        step = (_Adam if c.optimizer == "adam" else _Rprop)(params, grads, c.lr)
        bufs: dict[int, tuple[Any, ...]] = {}
        # NumPy 2.4's maximum against a scalar is unvectorised; against a row of zeros it is not.
        zero_rows = [np.zeros(b, np.float32) for _, b in pairs]
        ones_k = np.ones(c.n_outputs, np.float32)

        def buffers(m: int) -> tuple[Any, ...]:
            if m not in bufs:
                bufs[m] = (
                    [np.empty((m, b), np.float32) for _, b in pairs],  # activations
                    [np.empty((m, a), np.float32) for a, _ in pairs],  # dX
                    np.empty((m, X.shape[1]), np.float32),
                    np.empty((m, Y.shape[1]), np.float32),
                    np.empty((m, 1), np.float32),
                    np.ones(m, np.float32),
                )
            return bufs[m]

        loss_sum = 0.0
        for _ in range(c.epochs):
            loss_sum = 0.0
            order = None if n == B else rng.permutation(n)
            for start in range(0, n, B):
                if order is None:
                    Xb, Yb = X, Y
                    m = n
                    As, dXs, _, _, col, ones = buffers(m)
                else:
                    idx = order[start : start + B]
                    m = len(idx)
                    As, dXs, xb, yb, col, ones = buffers(m)
                    Xb = np.take(X, idx, axis=0, out=xb)
                    Yb = np.take(Y, idx, axis=0, out=yb)
                a = Xb
                for i in range(len(pairs)):
                    Z = np.matmul(a, Ws[i], out=As[i])
                    Z += bs[i]
                    if i < last:
                        np.maximum(Z, zero_rows[i], out=Z)
                    a = Z
                dZ = a
                if classify:
                    # softmax + cross-entropy from the logits; dZ = (P - Y) / m
                    np.copyto(col, dZ[:, :1])
                    for j in range(1, dZ.shape[1]):
                        np.maximum(col, dZ[:, j : j + 1], out=col)
                    dZ -= col
                    loss = -float(np.vdot(Yb, dZ))
                    np.exp(dZ, out=dZ)
                    np.matmul(dZ, ones_k, out=col[:, 0])
                    dZ /= col
                    np.log(col, out=col)
                    loss = (loss + float(col.sum())) / m
                    dZ -= Yb
                    dZ *= 1.0 / m
                else:
                    dZ -= Yb
                    loss = float(np.vdot(dZ, dZ)) / dZ.size
                    dZ *= 2.0 / dZ.size
                loss_sum += loss * m
                for i in range(last, -1, -1):
                    prev = Xb if i == 0 else As[i - 1]
                    np.matmul(prev.T, dZ, out=dWs[i])
                    np.dot(ones, dZ, out=dbs[i])
                    if i > 0:
                        dA = np.matmul(dZ, Ws[i].T, out=dXs[i])
                        dA *= prev > 0
                        dZ = dA
                step()
        return loss_sum / n

    @staticmethod
    def versions() -> dict[str, str]:
        return {"numpy": np.__version__}


class _Adam:
    """The same Adam rule as mlpcli's (bias corrections folded into two scalars)."""

    def __init__(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        self.params, self.grads, self.lr = params, grads, lr
        self.M, self.V = np.zeros_like(params), np.zeros_like(params)
        self.tmp = np.empty_like(params)
        self.t = 0

    def __call__(self) -> None:
        M, V, tmp, g = self.M, self.V, self.tmp, self.grads
        b1, b2, eps = 0.9, 0.999, 1e-8
        self.t += 1
        M *= b1
        np.multiply(g, 1.0 - b1, out=tmp)
        M += tmp
        V *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        V += tmp
        c2 = math.sqrt(1.0 - b2**self.t)
        np.sqrt(V, out=tmp)
        tmp += eps * c2
        np.divide(M, tmp, out=tmp)
        tmp *= self.lr * c2 / (1.0 - b1**self.t)
        self.params -= tmp


class _Rprop:
    """The same iRprop- rule as mlpcli's."""

    def __init__(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        self.params, self.grads = params, grads
        self.D = np.full_like(params, lr)
        self.prev, self.s = np.zeros_like(params), np.empty_like(params)
        self.grow = np.empty(params.shape, bool)
        self.shrink = np.empty(params.shape, bool)

    def __call__(self) -> None:
        D, prev, s, grow, shrink = self.D, self.prev, self.s, self.grow, self.shrink
        np.sign(self.grads, out=s)
        np.multiply(prev, s, out=prev)
        np.greater(prev, 0, out=grow)
        np.less(prev, 0, out=shrink)
        np.multiply(D, 1.2, out=D, where=grow)
        np.multiply(D, 0.5, out=D, where=shrink)
        np.clip(D, 1e-6, 50.0, out=D)
        np.copyto(s, 0, where=shrink)
        np.copyto(prev, s)
        s *= D
        self.params -= s


class GemmFloor(Impl):
    """Only the matrix products of the forward and backward passes, on fixed buffers: the
    floor no implementation of this algorithm can go below at this batch size."""

    key, label = "gemm", "matrix products only (floor)"

    def __init__(self, case: Case, data: CaseData, threads: int) -> None:
        super().__init__(case, data, threads)
        sizes = [case.n_features, *case.hidden, case.n_outputs]
        self.pairs = list(itertools.pairwise(sizes))
        rng = np.random.default_rng(0)
        self.B = case.n_samples if case.batch_size is None else case.batch_size
        m = min(self.B, case.n_samples)
        self.X = np.ascontiguousarray(data.X[:m])
        self.Ws = [rng.standard_normal((a, b)).astype(np.float32) * 0.05 for a, b in self.pairs]
        self.As = [np.empty((m, b), np.float32) for _, b in self.pairs]
        self.dXs = [np.empty((m, a), np.float32) for a, _ in self.pairs]
        self.dWs = [np.empty_like(W) for W in self.Ws]

    def run(self, seed: int) -> float:
        c = self.case
        n_batches = math.ceil(c.n_samples / self.B) * c.epochs
        last = len(self.pairs) - 1
        for _ in range(n_batches):
            a = self.X
            for i, W in enumerate(self.Ws):
                a = np.matmul(a, W, out=self.As[i])
            g = a
            for i in range(last, -1, -1):
                np.matmul((self.X if i == 0 else self.As[i - 1]).T, g, out=self.dWs[i])
                if i > 0:
                    g = np.matmul(g, self.Ws[i].T, out=self.dXs[i])
        return float("nan")


# --------------------------------------------------------------------------- scikit-learn
class _Sklearn(Impl):
    dtype: type = np.float64

    def __init__(self, case: Case, data: CaseData, threads: int) -> None:
        super().__init__(case, data, threads)
        self.X = data.X.astype(self.dtype)
        y = data.y if case.task == "multiclass" else data.y.astype(self.dtype)
        self.y = y.ravel() if case.task == "regression" and case.n_outputs == 1 else y

    @staticmethod
    def missing() -> str | None:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            return "scikit-learn is not installed (pip install '.[bench]' in the checkout)"
        return None

    def unsupported(self, case: Case) -> str | None:
        if case.optimizer != "adam":
            return f"scikit-learn's MLP has no {case.optimizer} solver"
        return None

    def run(self, seed: int) -> float:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        c = self.case
        cls = MLPClassifier if c.task == "multiclass" else MLPRegressor
        model = cls(
            hidden_layer_sizes=c.hidden,
            activation="relu",
            solver="adam",
            alpha=0.0,
            batch_size=c.n_samples if c.batch_size is None else c.batch_size,
            learning_rate_init=c.lr,
            max_iter=c.epochs,
            shuffle=True,
            random_state=seed,
            tol=0.0,
            n_iter_no_change=c.epochs + 1,
            early_stopping=False,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-8,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(self.X, self.y)
        # scikit-learn's squared error is halved; report the plain mean squared error.
        return float(model.loss_) * (2.0 if c.task == "regression" else 1.0)

    @staticmethod
    def versions() -> dict[str, str]:
        import scipy
        import sklearn

        return {"scikit-learn": sklearn.__version__, "scipy": scipy.__version__}


class Sklearn64(_Sklearn):
    key, label, dtype = "sklearn64", "scikit-learn, float64 input", np.float64


class Sklearn32(_Sklearn):
    key, label, dtype = "sklearn32", "scikit-learn, float32 input", np.float32


# --------------------------------------------------------------------------- PyTorch
class Torch(Impl):
    """A hand-written PyTorch training loop on the CPU, as its tutorials write it."""

    key, label = "torch", "PyTorch CPU, hand loop"

    def __init__(self, case: Case, data: CaseData, threads: int) -> None:
        super().__init__(case, data, threads)
        import torch

        torch.set_num_threads(threads)
        self.X = torch.from_numpy(data.X)
        self.y = torch.from_numpy(data.y)

    @staticmethod
    def missing() -> str | None:
        try:
            import torch  # noqa: F401
        except ImportError:
            return "PyTorch is not installed (pip install '.[bench]' in the checkout)"
        return None

    def run(self, seed: int) -> float:
        import torch
        from torch import nn

        c = self.case
        torch.manual_seed(seed)
        sizes = [c.n_features, *c.hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(sizes[-1], c.n_outputs))
        if c.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=c.lr, eps=1e-8)
        else:
            opt = torch.optim.Rprop(
                model.parameters(), lr=c.lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)
            )
        loss_fn = nn.CrossEntropyLoss() if c.task == "multiclass" else nn.MSELoss()
        n = c.n_samples
        B = n if c.batch_size is None else c.batch_size
        loss_sum = 0.0
        for _ in range(c.epochs):
            loss_sum = 0.0
            perm = torch.randperm(n) if n > B else None
            for start in range(0, n, B):
                if perm is None:
                    xb, yb = self.X, self.y
                else:
                    idx = perm[start : start + B]
                    xb, yb = self.X[idx], self.y[idx]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(xb)
        return loss_sum / n

    @staticmethod
    def versions() -> dict[str, str]:
        import torch

        config = torch.__config__.show()
        blas = next(
            (
                line.split("BLAS_INFO=", 1)[1].split(",")[0].strip()
                for line in config.splitlines()
                if "BLAS_INFO=" in line
            ),
            "?",
        )
        return {"torch": torch.__version__, "torch BLAS": blas}


IMPLS: dict[str, type[Impl]] = {
    cls.key: cls for cls in (Engine, BareNumpy, GemmFloor, Sklearn64, Sklearn32, Torch)
}


# --------------------------------------------------------------------------- worker
def _threadpools() -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "prefix")
    return [{k: info.get(k) for k in keep} for info in threadpool_info()]


def _cpu_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(key: str, case_name: str, threads: int) -> None:
    """Prepare one implementation on one case, warm it up once, then serve timed runs."""
    from threadpoolctl import threadpool_limits

    cls, case = IMPLS[key], CASES[case_name]
    out = sys.stdout
    reason = cls.missing()
    impl = None
    if reason is None:
        impl = cls(case, make_data(case), threads)
        reason = impl.unsupported(case)
    if reason is not None or impl is None:
        out.write(json.dumps({"skip": reason}) + "\n")
        out.flush()
        return
    limits = threadpool_limits(limits=threads)  # every BLAS and OpenMP pool in this process
    impl.run(SEED)  # warm-up: first touch of buffers, thread pools, lazy imports
    ready = {"ready": True, "versions": cls.versions(), "threadpools": _threadpools()}
    out.write(json.dumps(ready) + "\n")
    out.flush()
    for line in sys.stdin:
        if line.strip() != "run":
            break
        cpu = _cpu_seconds()
        started = time.perf_counter()
        loss = impl.run(SEED)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu
        out.write(json.dumps({"seconds": seconds, "cpu": cpu, "loss": loss}) + "\n")
        out.flush()
    limits.restore_original_limits()


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
