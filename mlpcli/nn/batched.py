"""Member-batched layers: K networks of equal shapes trained as one (TabM's packed ensemble).

Every array carries the member axis first: inputs and outputs are (K, n_samples, k), and each
parameter is (K, ...), so member k only ever sees its own slice. A dense layer is then one
batched matrix product, np.matmul((K, n, k_in), (K, k_in, k_out)), instead of K separate ones
(Gorishniy et al. 2024, "TabM", `LinearEnsemble`: x.transpose(0, 1) @ weight). With K = 1 these
are ordinary layers. Notation as in layers.py: Z = X W + b, gradients dZ, dW, db, dX.

Each layer lists its parameters as `ParamSpec`s with a learning-rate factor and whether weight
decay applies (RealMLP-TD's parameter groups), may initialise them from the training data it is
given (`initialise`), and keeps backward beside forward. Layers (registry `LAYERS`):

- scale      Y = X * s, s per feature, s = 1 at start                          (RealMLP-TD)
- dense      Z = X (g W) + b, g = 1/sqrt(k_in) under the NTK parametrisation, else 1;
             init "std": W ~ N(0, 1) rescaled so each unit of X g W has unit std on the data;
             bias "he+5": b_j = -sum_i a_i Z[r_i, j] over 5 random rows r_i, a ~ Dirichlet(1)
- be_dense   Z_k = ((X_k * r_k) (g W)) * s_k + b_k: W shared, rank-1 adapters per member (TabM)
- act        Y = X + alpha (f(X) - X), alpha per unit, alpha = 1 at start (parametric mix)
- dropout    inverted dropout whose rate p may change every step (a flat-then-cosine schedule)
- pbld       periodic embedding of numeric column j: [cos(2 pi x w_j + b_j) V_j + c_j, x]
             with w_j ~ N(0, sigma^2) (F frequencies), b_j ~ U(-pi, pi), V_j (F, h-1); raw x
             kept ("densenet"), other columns passed through               (RealMLP-TD's PBLD)
- cat_embedding  categorical columns of many levels: onehot @ E_j, a learned d-wide row per
             level (an embedding lookup as a matrix product); other columns passed through
- ple        piecewise-linear encoding of numeric column j on quantile bins e_0 < ... < e_T:
             component t = clip((x - e_{t-1}) / (e_t - e_{t-1}), 0, 1), the first unclipped
             below and the last above (Gorishniy et al. 2022, "On Embeddings for Numerical
             Features"); edges fitted on the training rows; all columns passed through as well

About 660 lines on purpose: one registry of layer classes, each with its backward beside its
forward; a module per layer would scatter the shared member-axis conventions (`_Scratch`, `_out`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from mlpcli.errors import UsageError
from mlpcli.nn.activations import Activation
from mlpcli.nn.layers import _ones

Array = NDArray[np.floating]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter array: its name, shape (member axis first), lr factor, decay or not."""

    name: str
    shape: tuple[int, ...]
    lr_factor: float = 1.0
    decay: bool = True


class _Scratch:
    """Training-time scratch arrays by role, reused while the shape stays (every full batch).

    Only training passes use them (inference allocates, so a large validation set leaves no
    large buffers behind); what a forward caches for its backward lives here until the next
    training forward, so callers copy a returned array they want to keep.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, Array] = {}

    def get(self, role: str, shape: tuple[int, ...], dtype: np.dtype) -> Array:
        buf = self._arrays.get(role)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._arrays[role] = np.empty(shape, dtype=dtype)
        return buf


def _out(
    scratch: _Scratch, training: bool, role: str, shape: tuple[int, ...], dtype: np.dtype
) -> Array:
    """A reused scratch array in training, a fresh one in inference."""
    return scratch.get(role, shape, dtype) if training else np.empty(shape, dtype=dtype)


class MemberLayer:
    """Base class: maps (K, n, n_in) to (K, n, n_out); parameters are views bound by the net."""

    kind: ClassVar[str]

    def __init__(self, n_members: int, n_in: int) -> None:
        self.n_members, self.n_in = int(n_members), int(n_in)
        self.n_out = self.n_in
        self.params: list[Array] = []
        self.grads: list[Array] = []
        self._scratch = _Scratch()

    def specs(self) -> list[ParamSpec]:
        return []

    def bind(self, params: list[Array], grads: list[Array]) -> None:
        self.params, self.grads = params, grads

    def initialise(self, rng: np.random.Generator, X: Array) -> None:
        """Set the parameters, given this layer's input on (a sample of) the training rows."""

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        raise NotImplementedError

    def backward(self, dY: Array) -> Array:
        raise NotImplementedError


class FeatureScale(MemberLayer):
    """Y = X * s: a learnable per-feature scale in front of the first dense layer."""

    kind = "scale"

    def __init__(self, n_members: int, n_in: int, lr_factor: float = 6.0) -> None:
        super().__init__(n_members, n_in)
        self.lr_factor = lr_factor
        self._X: Array | None = None

    def specs(self) -> list[ParamSpec]:
        return [ParamSpec("s", (self.n_members, self.n_in), self.lr_factor)]

    def initialise(self, rng: np.random.Generator, X: Array) -> None:
        self.params[0][...] = 1.0

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        self._X = X
        Y = _out(self._scratch, training, "Y", X.shape, X.dtype)
        return np.multiply(X, self.params[0][:, None, :], out=Y)

    def backward(self, dY: Array) -> Array:
        X = self._X
        assert X is not None, "backward before forward"
        # ds = sum_i dY_i * X_i, dX = dY * s (in place: dY is the next layer's scratch)
        np.einsum("knd,knd->kd", dY, X, out=self.grads[0])
        dY *= self.params[0][:, None, :]
        return dY


#: Weight parametrisations: the gain g that multiplies W in the forward pass.
WEIGHT_PARAMS = ("ntk", "standard")
#: Weight initialisations of the dense layer (before the gain).
WEIGHT_INITS = ("std", "normal", "zeros")
#: Bias initialisations of the dense layer.
BIAS_INITS = ("he+5", "normal", "zeros")


class MemberDense(MemberLayer):
    """Z = X (g W) + b, batched over members; g = 1/sqrt(k_in) under the NTK parametrisation.

    With NTK, W stays of order 1 whatever the width, so one learning rate suits every layer
    (Jacot et al. 2018; RealMLP-TD's `weight_param='ntk'`).
    """

    kind = "dense"

    def __init__(
        self,
        n_members: int,
        n_in: int,
        n_out: int,
        param: str = "ntk",
        weight_init: str = "std",
        bias_init: str = "he+5",
        bias_lr_factor: float = 0.1,
        input_grad: bool = True,
    ) -> None:
        super().__init__(n_members, n_in)
        for what, value, allowed in (
            ("weight parametrisation", param, WEIGHT_PARAMS),
            ("weight initialisation", weight_init, WEIGHT_INITS),
            ("bias initialisation", bias_init, BIAS_INITS),
        ):
            if value not in allowed:
                raise UsageError(f"Unknown {what} '{value}'; choose one of: {', '.join(allowed)}.")
        self.n_out = int(n_out)
        self.param, self.weight_init, self.bias_init = param, weight_init, bias_init
        self.bias_lr_factor = bias_lr_factor
        self.gain = 1.0 / math.sqrt(n_in) if param == "ntk" else 1.0
        self.input_grad = input_grad
        self._X: Array | None = None

    def specs(self) -> list[ParamSpec]:
        K = self.n_members
        return [
            ParamSpec("W", (K, self.n_in, self.n_out)),
            ParamSpec("b", (K, self.n_out), self.bias_lr_factor, decay=False),
        ]

    def initialise(self, rng: np.random.Generator, X: Array) -> None:
        W, b = self.params
        if self.weight_init == "zeros":
            W[...] = 0.0
        else:
            W[...] = rng.standard_normal(W.shape)
        if self.weight_init == "std":
            std = np.matmul(X, self.gain * W).std(axis=1, keepdims=True)  # (K, 1, k_out)
            W /= np.where(std > 0, std, 1.0)
        if self.bias_init == "zeros":
            b[...] = 0.0
        elif self.bias_init == "normal":
            b[...] = rng.standard_normal(b.shape)
        else:
            b[...] = self._he_plus_bias(rng, np.matmul(X, self.gain * W), 5)

    @staticmethod
    def _he_plus_bias(rng: np.random.Generator, Z: Array, n_points: int) -> Array:
        """b_j = -(a . Z[r, j]) for n_points random rows r and simplex weights a ~ Dirichlet(1):
        each unit's kink lands inside the data (pytabkit's `heplus_bias`)."""
        K, n, k = Z.shape
        rows = rng.integers(0, n, size=(K, k, n_points))
        weights = rng.exponential(1.0, size=(K, k, n_points))
        weights /= weights.sum(axis=2, keepdims=True)
        members = np.arange(K)[:, None, None]
        units = np.arange(k)[None, :, None]
        picked = Z[members, rows, units]  # (K, k, n_points)
        sampled: Array = -(picked * weights).sum(axis=2)
        return sampled

    def _gained(self, training: bool) -> Array:
        """g W, formed once per forward (one pass over W) and reused by the backward's dX,
        where scaling Z and dX by g took a pass over each (n x k) array."""
        W = self.params[0]
        if self.gain == 1.0:
            return W
        Wg = _out(self._scratch, training, "Wg", W.shape, W.dtype)
        return np.multiply(W, self.gain, out=Wg)

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        self._X = X
        b = self.params[1]
        self._Wg = Wg = self._gained(training)
        K, n, _ = X.shape
        Z = _out(self._scratch, training, "Z", (K, n, self.n_out), X.dtype)
        np.matmul(X, Wg, out=Z)
        Z += b[:, None, :]
        return Z

    def backward(self, dZ: Array) -> Array:
        X = self._X
        assert X is not None, "backward before forward"
        dW, db = self.grads
        # dW = g X^T dZ, db = sum_i dZ_i, dX = dZ (g W)^T (per member)
        np.matmul(X.transpose(0, 2, 1), dZ, out=dW)
        if self.gain != 1.0:
            dW *= self.gain
        # The row sum as a product with ones: one BLAS call, faster than np.sum over axis 1.
        np.matmul(_ones(dZ.shape[1], dZ.dtype), dZ, out=db)
        if not self.input_grad:
            return dZ  # unused: the first layer's input is data
        K, n, _ = dZ.shape
        dX = self._scratch.get("dX", (K, n, self.n_in), dZ.dtype)
        return np.matmul(dZ, self._Wg.transpose(0, 2, 1), out=dX)


class BatchEnsembleDense(MemberDense):
    """Z_k = ((X_k * r_k) (g W)) * s_k + b_k: one weight matrix shared by all members, each with
    its own rank-1 adapters r (k_in), s (k_out) and bias (BatchEnsemble, Wen et al. 2020; TabM's
    default `LinearBatchEnsemble`, with r at random signs and s at 1).

    K times fewer weights than `dense`, and the K members' rows go through W as one
    (K n, k_in) @ (k_in, k_out) product. The "std" init rescales W on all members' rows at once.
    """

    kind = "be_dense"
    _U: Array | None = None
    _Zc: Array | None = None

    def specs(self) -> list[ParamSpec]:
        K = self.n_members
        return [
            ParamSpec("W", (self.n_in, self.n_out)),
            ParamSpec("r", (K, self.n_in)),
            ParamSpec("s", (K, self.n_out)),
            ParamSpec("b", (K, self.n_out), self.bias_lr_factor, decay=False),
        ]

    def initialise(self, rng: np.random.Generator, X: Array) -> None:
        W, r, s, b = self.params
        r[...] = rng.choice([-1.0, 1.0], size=r.shape)
        s[...] = 1.0
        W[...] = 0.0 if self.weight_init == "zeros" else rng.standard_normal(W.shape)
        Zc = self._shared(X * r[:, None, :], W)
        if self.weight_init == "std":
            std = Zc.reshape(-1, self.n_out).std(axis=0)
            scale = np.where(std > 0, std, 1.0)
            W /= scale
            Zc = Zc / scale
        if self.bias_init == "zeros":
            b[...] = 0.0
        elif self.bias_init == "normal":
            b[...] = rng.standard_normal(b.shape)
        else:
            b[...] = self._he_plus_bias(rng, Zc, 5)

    def _shared(self, U: Array, W: Array) -> Array:
        """(U g W) for all members in one matrix product."""
        K, n, _ = U.shape
        Zc: Array = np.matmul(U.reshape(K * n, self.n_in), W).reshape(K, n, self.n_out)
        if self.gain != 1.0:
            Zc *= self.gain
        return Zc

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        W, r, s, b = self.params
        U = X * r[:, None, :]
        Zc = self._shared(U, W)
        self._X, self._U, self._Zc = X, U, Zc
        return Zc * s[:, None, :] + b[:, None, :]

    def backward(self, dZ: Array) -> Array:
        X, U, Zc = self._X, self._U, self._Zc
        assert X is not None and U is not None and Zc is not None, "backward before forward"
        W, r, s, _ = self.params
        dW, dr, ds, db = self.grads
        K, n, _ = dZ.shape
        # ds = sum_i dZ Zc, db = sum_i dZ, dZc = dZ s, dW = g U^T dZc over all members' rows,
        # dU = g dZc W^T, dr = sum_i dU X, dX = dU r
        np.einsum("kno,kno->ko", dZ, Zc, out=ds)
        np.sum(dZ, axis=1, out=db)
        dZc = dZ * s[:, None, :]
        flat = dZc.reshape(K * n, self.n_out)
        np.matmul(U.reshape(K * n, self.n_in).T, flat, out=dW)
        dU: Array = np.matmul(flat, W.T).reshape(K, n, self.n_in)
        if self.gain != 1.0:
            dW *= self.gain
            dU *= self.gain
        np.einsum("kni,kni->ki", dU, X, out=dr)
        dU *= r[:, None, :]
        return dU


class ParametricActivation(MemberLayer):
    """Y = X + alpha (f(X) - X) = (1 - alpha) X + alpha f(X), alpha per unit (RealMLP-TD).

    alpha starts at 1 (plain f); learning it lets a unit become more linear where that helps.
    """

    kind = "act"

    def __init__(
        self, n_members: int, n_in: int, activation: Activation, lr_factor: float = 0.1
    ) -> None:
        super().__init__(n_members, n_in)
        self.activation, self.lr_factor = activation, lr_factor
        self._X: Array | None = None
        self._F: Array | None = None
        self._D: Array | None = None

    def specs(self) -> list[ParamSpec]:
        return [ParamSpec("alpha", (self.n_members, self.n_in), self.lr_factor)]

    def initialise(self, rng: np.random.Generator, X: Array) -> None:
        self.params[0][...] = 1.0

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        scratch, shape, dtype = self._scratch, X.shape, X.dtype
        F = self.activation.forward(X, out=_out(scratch, training, "F", shape, dtype))
        D = np.subtract(F, X, out=_out(scratch, training, "D", shape, dtype))
        self._X, self._F, self._D = X, F, D
        Y = np.multiply(
            D, self.params[0][:, None, :], out=_out(scratch, training, "Y", shape, dtype)
        )
        Y += X
        return Y

    def backward(self, dY: Array) -> Array:
        X, F, D = self._X, self._F, self._D
        assert X is not None and F is not None and D is not None, "backward before forward"
        alpha = self.params[0][:, None, :]
        # dalpha = sum_i dY (f(X) - X), dX = dY (1 - alpha) + alpha f'(X) dY
        np.einsum("knd,knd->kd", dY, D, out=self.grads[0])
        dA = np.multiply(dY, alpha, out=self._scratch.get("dA", dY.shape, dY.dtype))
        dF = self.activation.backward(dA, X, F)
        dY *= 1.0 - alpha  # in place: dY is the next layer's scratch
        dF += dY
        return dF


class MemberDropout(MemberLayer):
    """Inverted dropout with a rate `p` the trainer may change between steps; off at inference."""

    kind = "dropout"

    def __init__(self, n_members: int, n_in: int, p: float = 0.15) -> None:
        super().__init__(n_members, n_in)
        if not 0.0 <= p < 1.0:
            raise UsageError(f"--dropout must be in [0, 1); got {p}.")
        self.p = p
        self._mask: Array | None = None

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        if not training or self.p == 0.0:
            self._mask = None
            return X
        assert rng is not None, "dropout in training needs a random generator"
        # A unit is kept where a uniform 16-bit draw u >= round(p 2^16), so the rate is p to
        # within 2^-17. The draws are the generator's raw 64-bit words cut in four (a third of
        # the time of rng.random's float32 uniforms, which was 40% of a 256 x 256 matmul).
        size = X.size
        words = rng.bit_generator.random_raw(-(-size // 4))
        draws = words.view(np.uint16)[:size].reshape(X.shape)
        keep = np.greater_equal(
            draws, round(self.p * 65536), out=self._scratch.get("keep", X.shape, np.dtype(bool))
        )
        # The scale as a scalar of X's dtype: bool times a Python float casts per element.
        scale = X.dtype.type(1.0 / (1.0 - self.p))
        mask = np.multiply(keep, scale, out=self._scratch.get("mask", X.shape, X.dtype))
        self._mask = mask
        return np.multiply(X, mask, out=self._scratch.get("Y", X.shape, X.dtype))

    def backward(self, dY: Array) -> Array:
        if self._mask is not None:
            dY *= self._mask
        return dY


def _numeric_columns(n_in: int, numeric: Sequence[int] | None) -> NDArray[np.intp]:
    columns = np.arange(n_in) if numeric is None else np.asarray(numeric, dtype=np.intp)
    if columns.size and (columns.min() < 0 or columns.max() >= n_in):
        raise ValueError(f"numeric columns {columns.tolist()} out of range for {n_in} inputs")
    return columns


class PeriodicEmbedding(MemberLayer):
    """PBLD: per numeric column, [cos(2 pi x w + b) V + c, x]; other columns passed through.

    Output: the (h - 1)-wide embedding of every numeric column, then all input columns.
    """

    kind = "pbld"

    def __init__(
        self,
        n_members: int,
        n_in: int,
        numeric: Sequence[int] | None = None,
        n_frequencies: int = 16,
        sigma: float = 0.1,
        d_embedding: int = 4,
        lr_factor: float = 0.1,
    ) -> None:
        super().__init__(n_members, n_in)
        if n_frequencies < 1 or d_embedding < 2 or not sigma > 0:
            raise UsageError(
                "The periodic embedding needs at least 1 frequency, an embedding width of at "
                f"least 2 and sigma > 0; got {n_frequencies}, {d_embedding}, {sigma}."
            )
        self.numeric = _numeric_columns(n_in, numeric)
        self.n_frequencies, self.sigma = int(n_frequencies), float(sigma)
        self.hidden = int(d_embedding) - 1  # the raw x is the last embedding component
        self.lr_factor = lr_factor
        self.n_out = self.numeric.size * self.hidden + n_in
        self._cache: tuple[Array, Array, Array, Array] | None = None

    def specs(self) -> list[ParamSpec]:
        K, d, F, h = self.n_members, self.numeric.size, self.n_frequencies, self.hidden
        f = self.lr_factor
        return [
            ParamSpec("w", (K, d, 1, F), f),
            ParamSpec("b", (K, d, 1, F), f),
            ParamSpec("V", (K, d, F, h), f),
            ParamSpec("c", (K, d, 1, h), f),
        ]

    def initialise(self, rng: np.random.Generator, X: Array) -> None:
        w, b, V, c = self.params
        F = self.n_frequencies
        w[...] = self.sigma * rng.standard_normal(w.shape)
        # U(-pi, pi) rather than U(0, 2 pi): smaller values under weight decay (pytabkit)
        b[...] = math.pi * rng.uniform(-1.0, 1.0, b.shape)
        V[...] = rng.uniform(-1.0, 1.0, V.shape) / math.sqrt(F)
        c[...] = rng.uniform(-1.0, 1.0, c.shape) / math.sqrt(F)

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        w, b, V, c = self.params
        K, n, n_in = X.shape
        d, h, F = self.numeric.size, self.hidden, self.n_frequencies
        scratch = self._scratch
        # A = 2 pi x w + b as one product per column: [x, 1] (n, 2) @ [2 pi w; b] (2, F); the
        # backward's sums over rows are then products with [x, 1] too (no reductions over n).
        x1 = _out(scratch, training, "x1", (K, d, n, 2), X.dtype)
        np.copyto(x1[..., 0], X[:, :, self.numeric].transpose(0, 2, 1))
        x1[..., 1] = 1.0
        wb = _out(scratch, training, "wb", (K, d, 2, F), X.dtype)
        np.multiply(w, 2.0 * math.pi, out=wb[:, :, :1])
        wb[:, :, 1:] = b
        A = np.matmul(x1, wb, out=_out(scratch, training, "A", (K, d, n, F), X.dtype))
        C = np.cos(A, out=_out(scratch, training, "C", A.shape, A.dtype))
        # The output is [E, X] with E = C V + c: one contiguous product per column, copied
        # into the output's (K, d, n, h) view (faster than a product into the strided view).
        E = np.matmul(C, V, out=_out(scratch, training, "E", (K, d, n, h), X.dtype))
        E += c
        out = _out(scratch, training, "out", (K, n, d * h + n_in), X.dtype)
        np.copyto(out[:, :, : d * h].reshape(K, n, d, h).transpose(0, 2, 1, 3), E)
        out[:, :, d * h :] = X
        self._cache = (x1, wb, A, C)
        return out

    def backward(self, dY: Array) -> Array:
        assert self._cache is not None, "backward before forward"
        x1, wb, A, C = self._cache
        V = self.params[2]
        dw, db, dV, dc = self.grads
        K, n, _ = dY.shape
        d, h, F = self.numeric.size, self.hidden, self.n_frequencies
        scratch = self._scratch
        dE = scratch.get("dE", (K, d, n, h), dY.dtype)
        np.copyto(dE, dY[:, :, : d * h].reshape(K, n, d, h).transpose(0, 2, 1, 3))
        # E = C V + c: dV = C^T dE, dc = 1^T dE, dC = dE V^T
        np.matmul(C.transpose(0, 1, 3, 2), dE, out=dV)
        x1T = x1.transpose(0, 1, 3, 2)  # (K, d, 2, n): rows x and 1
        np.matmul(x1T[:, :, 1:], dE, out=dc)
        dA = np.matmul(dE, V.transpose(0, 1, 3, 2), out=scratch.get("dA", A.shape, A.dtype))
        # C = cos(A): dA = -dC sin(A); the sign is folded into the sums below.
        dA *= np.sin(A, out=A)  # A is not needed after this
        # A = [x, 1] [2 pi w; b]: [dw / 2 pi; db] = [x, 1]^T dA (one product), dx = dA (2 pi w)^T
        sums = np.matmul(x1T, dA, out=scratch.get("sums", (K, d, 2, F), dA.dtype))
        np.multiply(sums[:, :, :1], -2.0 * math.pi, out=dw)
        np.negative(sums[:, :, 1:], out=db)
        dx = np.matmul(dA, wb[:, :, :1].transpose(0, 1, 3, 2))[..., 0]  # (K, d, n)
        np.negative(dx, out=dx)
        dX = scratch.get("dX", (K, n, self.n_in), dY.dtype)
        np.copyto(dX, dY[:, :, d * h :])
        dX[:, :, self.numeric] += dx.transpose(0, 2, 1)
        return dX


class CategoricalEmbedding(MemberLayer):
    """Learned embeddings of categorical columns with many levels; other columns pass through.

    Block j is a column's one-hot columns [a_j, b_j) with L_j = b_j - a_j levels; it becomes
    its level's row of E_j (L_j, d), computed as onehot @ E_j (an embedding lookup as a matrix
    product, so one level's gradient is dE_j = onehot^T dY_j). Output: the passed-through
    columns in order, then every block's d values. RealMLP-TD one-hot encodes up to 9 levels
    and embeds larger categoricals in 8 dimensions.
    """

    kind = "cat_embedding"

    def __init__(
        self,
        n_members: int,
        n_in: int,
        blocks: Sequence[tuple[int, int]],
        d_embedding: int = 8,
        input_grad: bool = True,
    ) -> None:
        super().__init__(n_members, n_in)
        self.blocks = [(int(a), int(b)) for a, b in blocks]
        keep = np.ones(n_in, dtype=bool)
        for a, b in self.blocks:
            if not 0 <= a < b <= n_in:
                raise ValueError(f"categorical block [{a}, {b}) out of range for {n_in} inputs")
            keep[a:b] = False
        self.keep = np.flatnonzero(keep)
        self.d = int(d_embedding)
        self.input_grad = input_grad
        self.n_out = self.keep.size + len(self.blocks) * self.d
        self._X: Array | None = None

    def specs(self) -> list[ParamSpec]:
        K = self.n_members
        return [ParamSpec(f"E{j}", (K, b - a, self.d)) for j, (a, b) in enumerate(self.blocks)]

    def initialise(self, rng: np.random.Generator, X: Array) -> None:
        for E in self.params:
            E[...] = rng.standard_normal(E.shape)  # as torch's nn.Embedding

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        self._X = X
        parts = [X[:, :, self.keep]]
        parts += [
            np.matmul(X[:, :, a:b], E) for (a, b), E in zip(self.blocks, self.params, strict=True)
        ]
        return np.concatenate(parts, axis=2)

    def backward(self, dY: Array) -> Array:
        X = self._X
        assert X is not None, "backward before forward"
        m, d = self.keep.size, self.d
        dX = np.zeros_like(X) if self.input_grad else X
        if self.input_grad:
            dX[:, :, self.keep] = dY[:, :, :m]
        for j, ((a, b), E) in enumerate(zip(self.blocks, self.params, strict=True)):
            dYj = dY[:, :, m + j * d : m + (j + 1) * d]
            np.matmul(X[:, :, a:b].transpose(0, 2, 1), dYj, out=self.grads[j])  # dE = X^T dY
            if self.input_grad:
                dX[:, :, a:b] = np.matmul(dYj, E.transpose(0, 2, 1))
        return dX


def quantile_edges(x: Array, n_bins: int) -> Array:
    """Distinct training quantiles 0, 1/T, ..., 1 of one column (at most n_bins + 1 edges)."""
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)))
    return edges if edges.size >= 2 else np.array([edges[0], edges[0] + 1.0])


class PiecewiseLinearEncoding(MemberLayer):
    """PLE on quantile bins for numeric columns, then all input columns; no trainable parameters.

    A column with fewer distinct quantiles than bins gets fewer active components; the rest
    of its block stays 0. Edges come from the training rows given to `initialise` (member 0's,
    since all members see the same data) and are kept in `edges` (n_numeric, n_bins + 1).
    """

    kind = "ple"

    def __init__(
        self, n_members: int, n_in: int, numeric: Sequence[int] | None = None, n_bins: int = 16
    ) -> None:
        super().__init__(n_members, n_in)
        if n_bins < 1:
            raise UsageError(f"--ple-bins must be at least 1; got {n_bins}.")
        self.numeric = _numeric_columns(n_in, numeric)
        self.n_bins = int(n_bins)
        self.n_out = self.numeric.size * self.n_bins + n_in
        #: Left edges and widths per column and bin; width inf marks an unused bin.
        self.edges = np.zeros((self.numeric.size, self.n_bins + 1))
        self.n_edges = np.zeros(self.numeric.size, dtype=np.intp)
        self._cache: tuple[Array, NDArray[np.bool_]] | None = None

    def initialise(self, rng: np.random.Generator, X: Array) -> None:
        for j, column in enumerate(self.numeric):
            e = quantile_edges(np.asarray(X[0, :, column], dtype=np.float64), self.n_bins)
            self.edges[j, : e.size] = e
            self.edges[j, e.size :] = e[-1]
            self.n_edges[j] = e.size

    def bins(self, dtype: np.dtype) -> tuple[Array, Array, NDArray[np.bool_], NDArray[np.bool_]]:
        """Left edges, 1/widths (0 for unused bins), and which bins clip below and above."""
        left = self.edges[:, :-1]
        width = np.diff(self.edges, axis=1)
        t = np.arange(self.n_bins)[None, :]
        used = t < (self.n_edges[:, None] - 1)
        inv = np.where(used, 1.0 / np.where(used, width, 1.0), 0.0)
        clip_low = t > 0
        clip_high = t < (self.n_edges[:, None] - 2)
        return left.astype(dtype), inv.astype(dtype), clip_low & used, clip_high & used

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        K, n, _ = X.shape
        left, inv, clip_low, clip_high = self.bins(X.dtype)
        x = X[:, :, self.numeric][..., None]  # (K, n, d, 1)
        U = (x - left) * inv  # (K, n, d, T)
        low = clip_low & (U < 0.0)
        high = clip_high & (U > 1.0)
        U = np.where(low, 0.0, np.where(high, 1.0, U))
        self._cache = (inv, ~(low | high))
        return np.concatenate([U.reshape(K, n, -1), X], axis=2)

    def backward(self, dY: Array) -> Array:
        assert self._cache is not None, "backward before forward"
        inv, linear = self._cache
        K, n, _ = dY.shape
        d, T = self.numeric.size, self.n_bins
        dU = dY[:, :, : d * T].reshape(K, n, d, T)
        dX = dY[:, :, d * T :].copy()
        dX[:, :, self.numeric] += np.sum(dU * linear * inv, axis=3)
        return dX


LAYERS: dict[str, type[MemberLayer]] = {
    cls.kind: cls
    for cls in (
        FeatureScale,
        MemberDense,
        BatchEnsembleDense,
        ParametricActivation,
        MemberDropout,
        PeriodicEmbedding,
        PiecewiseLinearEncoding,
        CategoricalEmbedding,
    )
}
