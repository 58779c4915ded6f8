"""Activation functions, each with its derivative beside it.

`forward(Z)` returns A = sigma(Z); `backward(dA, Z, A)` returns dZ = dA * sigma'(Z) and may
overwrite `dA` in place (callers pass a scratch buffer), so the hot loop allocates little.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from mlpcli.errors import UsageError, choose
from mlpcli.nn.scratch import zeros

Array = NDArray[np.floating]


def _zero_row(Z: Array) -> Array | float:
    """A zero to compare Z with: a row of zeros, since NumPy 2.4's maximum/minimum against a
    scalar take an unvectorised loop (20 us for a (256, 256) float32 array, 7 us with a row)."""
    return zeros(Z.shape[-1], Z.dtype) if Z.ndim and Z.dtype.kind == "f" else 0.0


class Activation:
    """Base class: an elementwise (or row-wise, for softmax) nonlinearity."""

    name: ClassVar[str]
    #: Default weight initialiser for a layer followed by this activation.
    init: ClassVar[str] = "glorot_uniform"
    #: forward(Z, out=Z) is correct and backward(dA, A, A) equals backward(dA, Z, A), so a
    #: layer may compute A in place of Z (their sign agrees, and relu-like derivatives read
    #: only the sign).
    inplace: ClassVar[bool] = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        raise NotImplementedError

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(Activation):
    """sigma(z) = z."""

    name = "identity"
    inplace = True

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        if out is None:
            return Z.copy()
        if out is not Z:
            np.copyto(out, Z)
        return out

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        return dA


class Sigmoid(Activation):
    """sigma(z) = 1 / (1 + e^-z), computed as (1 + tanh(z/2)) / 2, which never overflows."""

    name = "sigmoid"
    inplace = True

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        out = np.multiply(Z, 0.5, out=out)
        np.tanh(out, out=out)
        out += 1.0
        out *= 0.5
        return out

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # sigma' = sigma (1 - sigma)
        dA *= A
        dA *= 1.0 - A
        return dA


class Tanh(Activation):
    """sigma(z) = tanh(z)."""

    name = "tanh"
    inplace = True

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.tanh(Z, out=out)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # tanh' = 1 - tanh^2, in one scratch array
        grad = np.multiply(A, A)
        np.subtract(1.0, grad, out=grad)
        dA *= grad
        return dA


class ReLU(Activation):
    """sigma(z) = max(z, 0)."""

    name = "relu"
    init = "he_normal"
    inplace = True

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.maximum(Z, _zero_row(Z), out=out)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        dA *= Z > 0
        return dA


class LeakyReLU(Activation):
    """sigma(z) = z for z > 0, slope * z otherwise."""

    name = "leaky_relu"
    init = "he_normal"

    def __init__(self, slope: float = 0.01) -> None:
        if not 0.0 <= slope < 1.0:
            raise UsageError(f"--leaky-slope must be in [0, 1); got {slope}.")
        self.slope = slope

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        out = np.multiply(Z, self.slope, out=out)
        return np.maximum(Z, out, out=out)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # sigma' = (z > 0) (1 - slope) + slope. Measured on (256, 256) float32, this is 10x
        # faster than np.where(Z > 0, 1.0, slope) (which also made float64) or a where= mask.
        grad = (Z > 0).astype(dA.dtype)
        grad *= 1.0 - self.slope
        grad += self.slope
        dA *= grad
        return dA

    def __repr__(self) -> str:
        return f"LeakyReLU(slope={self.slope})"


class Softplus(Activation):
    """sigma(z) = log(1 + e^z), a smooth relu that is always positive."""

    name = "softplus"
    init = "he_normal"

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        # max(z, 0) + log(1 + e^-|z|): never overflows, and 13x faster than np.logaddexp(z, 0)
        # on (256, 256) float32 at the same accuracy.
        tail = np.abs(Z)
        np.negative(tail, out=tail)
        np.exp(tail, out=tail)
        np.log1p(tail, out=tail)
        out = np.maximum(Z, _zero_row(Z), out=out)
        out += tail
        return out

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # softplus' = sigmoid(z) = (1 + tanh(z/2)) / 2, in one scratch array
        grad = np.multiply(Z, 0.5)
        np.tanh(grad, out=grad)
        grad += 1.0
        grad *= 0.5
        dA *= grad
        return dA


class ELU(Activation):
    """sigma(z) = z for z > 0, alpha (e^z - 1) otherwise."""

    name = "elu"
    init = "he_normal"
    inplace = True  # forward reads Z before writing out; sign(A) = sign(Z)

    def __init__(self, alpha: float = 1.0) -> None:
        if not alpha > 0:
            raise ValueError(f"ELU needs alpha > 0; got {alpha}")
        self.alpha = alpha

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        # max(z, 0) + alpha (e^min(z, 0) - 1): each term vanishes on the other side of zero.
        negative = np.minimum(Z, _zero_row(Z))
        np.expm1(negative, out=negative)
        negative *= self.alpha
        out = np.maximum(Z, _zero_row(Z), out=out)
        out += negative
        return out

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # elu' = 1 for z > 0, alpha e^z = sigma(z) + alpha otherwise; as min(A, 0) + alpha plus
        # (1 - alpha) where z > 0, since np.where over a random mask is 5x slower.
        grad = np.minimum(A, 0.0)
        grad += self.alpha
        if self.alpha != 1.0:
            step = (Z > 0).astype(dA.dtype)
            step *= 1.0 - self.alpha
            grad += step
        dA *= grad
        return dA


#: SELU's constants (Klambauer et al. 2017, "Self-Normalizing Neural Networks"), fixed so that
#: unit-variance inputs keep zero mean and unit variance through the layer.
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


class SELU(Activation):
    """sigma(z) = lambda z for z > 0, lambda alpha (e^z - 1) otherwise (Klambauer et al. 2017).

    RealMLP-TD's classification activation (Holzmüller et al. 2024), there in a parametric mix.
    """

    name = "selu"

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        # lambda [max(z, 0) + alpha (e^min(z, 0) - 1)], as in ELU but with exp - 1: NumPy's
        # float32 expm1 is not vectorised (12 ms against exp's 1.9 ms for 245,760 values), and
        # near 0, where expm1 is more precise, the absolute error of exp - 1 is below 1e-7.
        negative = np.minimum(Z, _zero_row(Z))
        np.exp(negative, out=negative)
        negative -= 1.0
        negative *= SELU_ALPHA
        out = np.maximum(Z, _zero_row(Z), out=out)
        out += negative
        out *= SELU_LAMBDA
        return out

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # selu' = lambda for z > 0, lambda alpha e^z = sigma(z) + lambda alpha otherwise.
        grad = np.minimum(A, 0.0)
        grad += SELU_LAMBDA * SELU_ALPHA
        step = (Z > 0).astype(dA.dtype)
        step *= SELU_LAMBDA - SELU_LAMBDA * SELU_ALPHA
        grad += step
        dA *= grad
        return dA


class Mish(Activation):
    """sigma(z) = z tanh(softplus(z)) (Misra 2019); RealMLP-TD's regression activation.

    tanh(log(1 + e^z)) = ((1 + e^z)^2 - 1) / ((1 + e^z)^2 + 1) = 1 - 2 / ((1 + e^z)^2 + 1),
    computed with e^z clipped at z = 20, beyond which the ratio is 1 in float64.
    """

    name = "mish"

    @staticmethod
    def _tanh_softplus(Z: Array) -> Array:
        u = np.minimum(Z, Z.dtype.type(20.0))
        np.exp(u, out=u)
        u += 1.0
        np.square(u, out=u)
        u += 1.0
        np.divide(-2.0, u, out=u)
        u += 1.0
        return u

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.multiply(Z, self._tanh_softplus(Z), out=out)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # mish' = t + z sigmoid(z) (1 - t^2), t = tanh(softplus(z)), since softplus' = sigmoid.
        t = self._tanh_softplus(Z)
        s = np.multiply(Z, 0.5)
        np.tanh(s, out=s)
        s += 1.0
        s *= 0.5  # sigmoid(z)
        s *= Z
        grad = np.multiply(t, t)
        np.subtract(1.0, grad, out=grad)
        grad *= s
        grad += t
        dA *= grad
        return dA


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELU(Activation):
    """sigma(z) = z Phi(z), with the tanh approximation of Hendrycks & Gimpel (as in BERT, GPT-2).

    NumPy has no erf; the approximation differs from the exact form by under 1e-3.
    """

    name = "gelu"
    init = "he_normal"

    # In-place steps on one or two scratch arrays: each large temporary costs page faults
    # (glibc returns big blocks to the OS), which made the one-line formula 7x slower.
    @staticmethod
    def _tanh_inner(Z: Array, z2: Array) -> Array:
        """t = tanh(u), u = sqrt(2/pi) (z + 0.044715 z^3), given z2 = z^2."""
        t = np.multiply(z2, 0.044715)
        t += 1.0
        t *= Z
        t *= _SQRT_2_OVER_PI
        return np.tanh(t, out=t)

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        t = self._tanh_inner(Z, np.multiply(Z, Z))
        t += 1.0
        t *= 0.5
        return np.multiply(Z, t, out=out)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # sigma' = (1 + t) / 2 + z (1 - t^2) u' / 2 = (1 + t) / 2 * (1 + z (1 - t) u'),
        # u' = sqrt(2/pi) (1 + 3 * 0.044715 z^2)
        zu = np.multiply(Z, Z)
        t = self._tanh_inner(Z, zu)
        zu *= 3 * 0.044715
        zu += 1.0
        zu *= _SQRT_2_OVER_PI
        zu *= Z
        t += 1.0
        dA *= t
        dA *= 0.5
        np.subtract(2.0, t, out=t)  # 1 - tanh(u)
        t *= zu
        t += 1.0
        dA *= t
        return dA


class Softmax(Activation):
    """sigma(z)_j = e^{z_j} / sum_k e^{z_k}, row-wise; an output activation only."""

    name = "softmax"

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        out = np.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # Jacobian-vector product: dZ = A * (dA - <dA, A>) row by row.
        dot = np.einsum("ij,ij->i", dA, A)[:, None]
        dA -= dot
        dA *= A
        return dA


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls
    for cls in (Identity, Sigmoid, Tanh, ReLU, LeakyReLU, Softplus, ELU, SELU, Mish, GELU, Softmax)
}

#: Activations a hidden layer may use (softmax couples units, so it is output-only).
HIDDEN_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "softmax")
#: Output activations the issue allows: by task, or overridden.
OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "softmax", "relu", "softplus")


def get(name: str, leaky_relu_slope: float = 0.01) -> Activation:
    """Build an activation from its command-line name."""
    cls = choose("activation", name, ACTIVATIONS)
    if name == "leaky_relu":
        return LeakyReLU(leaky_relu_slope)
    return cls()
