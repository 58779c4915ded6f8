"""Layers with backward beside forward, in the lecture's notation.

A layer maps X (n_samples, k_in) to its output, caching what its backward needs; `backward(dY)`
writes parameter gradients into the views the network bound to it and returns dX. Output and
gradient buffers are reused across batches of the same size, so steady-state training allocates
almost nothing; callers must copy a returned array they want to keep.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from mlpcli.nn.activations import Activation
from mlpcli.nn.scratch import BufferCache, ones

Array = NDArray[np.floating]

_ones = ones  # batched.py's name for it

#: Up to this many elements, a bias gradient is a matrix-vector product with a ones vector (one
#: BLAS call: 2.5x faster than np.sum(dZ, axis=0) for a (256, 256) float32 batch); beyond it
#: (full-batch training) the row-by-row sum is faster.
_GEMV_BIAS_MAX = 1 << 20


class Layer:
    """Base class. Parameters and their gradients are views into the network's flat buffers."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.params: list[Array] = []
        self.grads: list[Array] = []
        self._buffers = BufferCache()

    #: Attributes where forward keeps arrays of its batch for backward.
    _saved: ClassVar[tuple[str, ...]] = ()

    def release(self) -> None:
        """Let go of the scratch arrays and of what the last forward kept for backward."""
        self._buffers = BufferCache()
        for name in self._saved:
            setattr(self, name, None)

    def param_specs(self) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes of this layer's trainable parameters, in order."""
        return []

    def bind(self, params: list[Array], grads: list[Array]) -> None:
        self.params, self.grads = params, grads

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        raise NotImplementedError

    def backward(self, dY: Array) -> Array | None:
        raise NotImplementedError


class Dense(Layer):
    """Z = X W + b, with W of shape (k_in, k_out)."""

    kind = "dense"
    _saved = ("_X",)

    def __init__(self, n_in: int, n_out: int, bias: bool = True, input_grad: bool = True) -> None:
        super().__init__()
        self.n_in, self.n_out, self.bias = n_in, n_out, bias
        # The first layer's dX is never used; skipping it saves a matmul per batch.
        self.input_grad = input_grad
        self._X: Array | None = None

    def param_specs(self) -> list[tuple[str, tuple[int, ...]]]:
        specs: list[tuple[str, tuple[int, ...]]] = [("W", (self.n_in, self.n_out))]
        if self.bias:
            specs.append(("b", (self.n_out,)))
        return specs

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        self._X = X
        Z = self._buffers.get("Z", (X.shape[0], self.n_out), X.dtype)
        np.matmul(X, self.params[0], out=Z)
        if self.bias:
            Z += self.params[1]
        return Z

    def backward(self, dZ: Array) -> Array | None:
        X = self._X
        assert X is not None, "backward before forward"
        # dW = X^T dZ, db = sum_i dZ_i, dX = dZ W^T
        np.matmul(X.T, dZ, out=self.grads[0])
        if self.bias:
            if dZ.size <= _GEMV_BIAS_MAX:
                np.dot(ones(dZ.shape[0], dZ.dtype), dZ, out=self.grads[1])
            else:
                np.add.reduce(dZ, axis=0, out=self.grads[1])
        if not self.input_grad:
            return None
        dX = self._buffers.get("dX", (dZ.shape[0], self.n_in), dZ.dtype)
        return np.matmul(dZ, self.params[0].T, out=dX)


class ActivationLayer(Layer):
    """A = sigma(Z), elementwise.

    With `inplace` (set by the network, whose activations read the scratch output of the layer
    before them) A overwrites Z when the activation allows it (`Activation.inplace`): one
    (n, k) buffer and one pass over memory fewer per layer and batch.
    """

    kind = "activation"
    _saved = ("_Z", "_A")

    def __init__(self, activation: Activation, inplace: bool = False) -> None:
        super().__init__()
        self.activation = activation
        self.inplace = inplace and activation.inplace
        self._Z: Array | None = None
        self._A: Array | None = None

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        if self.inplace:
            A = self.activation.forward(X, out=X)
            self._Z = self._A = A
            return A
        A = self._buffers.get("A", X.shape, X.dtype)
        self._Z, self._A = X, self.activation.forward(X, out=A)
        return A

    def backward(self, dY: Array) -> Array:
        assert self._Z is not None and self._A is not None, "backward before forward"
        return self.activation.backward(dY, self._Z, self._A)


class BatchNorm(Layer):
    """Y = gamma (X - mu) / sqrt(var + eps) + beta.

    Training uses the batch's mean and variance and updates running averages
    (running <- momentum running + (1 - momentum) batch); inference uses the running values.
    """

    kind = "batchnorm"
    _saved = ("_xhat", "_inv_std")

    def __init__(self, n: int, momentum: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        self.n, self.momentum, self.eps = n, momentum, eps
        self.running_mean = np.zeros(n)
        self.running_var = np.ones(n)
        self._xhat: Array | None = None
        self._inv_std: Array | None = None
        self._training = True

    def param_specs(self) -> list[tuple[str, tuple[int, ...]]]:
        return [("gamma", (self.n,)), ("beta", (self.n,))]

    def set_dtype(self, dtype: np.dtype) -> None:
        self.running_mean = self.running_mean.astype(dtype)
        self.running_var = self.running_var.astype(dtype)

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        gamma, beta = self.params
        xhat = self._buffers.get("xhat", X.shape, X.dtype)
        if training:
            mean = X.mean(axis=0)
            np.subtract(X, mean, out=xhat)
            # The biased batch variance, from the centred buffer: no (n, k) temporaries.
            var = np.einsum("ij,ij->j", xhat, xhat) / X.dtype.type(X.shape[0])
            m = self.momentum
            self.running_mean *= m
            self.running_mean += (1.0 - m) * mean
            self.running_var *= m
            self.running_var += (1.0 - m) * var
        else:
            var = self.running_var
            np.subtract(X, self.running_mean, out=xhat)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat *= inv_std
        self._xhat, self._inv_std, self._training = xhat, inv_std, training
        Y = self._buffers.get("Y", X.shape, X.dtype)
        np.multiply(xhat, gamma, out=Y)
        Y += beta
        return Y

    def backward(self, dY: Array) -> Array:
        xhat, inv_std = self._xhat, self._inv_std
        assert xhat is not None and inv_std is not None, "backward before forward"
        gamma = self.params[0]
        dgamma, dbeta = self.grads
        np.einsum("ij,ij->j", dY, xhat, out=dgamma)
        np.sum(dY, axis=0, out=dbeta)
        if self._training:
            # Batch statistics depend on X. With dxhat = dY gamma, the textbook
            # dX = inv_std / n (n dxhat - sum(dxhat) - xhat sum(dxhat xhat)) simplifies, since
            # sum(dxhat) = gamma dbeta and sum(dxhat xhat) = gamma dgamma, to
            # dX = gamma inv_std (dY - dbeta / n - xhat dgamma / n); written into dY in place.
            n = dY.dtype.type(dY.shape[0])
            dY -= dbeta / n
            dY -= xhat * (dgamma / n)
        # In inference the running statistics are constants: dX = dY gamma inv_std.
        dY *= gamma * inv_std
        return dY


class Dropout(Layer):
    """Inverted dropout: keep each unit with probability 1 - p and scale by 1 / (1 - p).

    Off at inference, so predictions need no rescaling.
    """

    kind = "dropout"
    _saved = ("_mask",)

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self._mask: Array | None = None

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        if not training or self.p == 0.0:
            self._mask = None
            return X
        assert rng is not None, "dropout in training needs a random generator"
        mask = self._buffers.get("mask", X.shape, X.dtype)
        rng.random(out=mask, dtype=mask.dtype)
        np.greater_equal(mask, self.p, out=mask)
        mask *= 1.0 / (1.0 - self.p)
        self._mask = mask
        Y = self._buffers.get("Y", X.shape, X.dtype)
        return np.multiply(X, mask, out=Y)

    def backward(self, dY: Array) -> Array:
        if self._mask is not None:
            dY *= self._mask
        return dY


class Residual(Layer):
    """X_next = block(X) + X: a skip connection around a block of equal input and output width."""

    kind = "residual"

    def __init__(self, block: list[Layer]) -> None:
        super().__init__()
        self.block = block

    def release(self) -> None:
        super().release()
        for layer in self.block:
            layer.release()

    def forward(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        out = X
        for layer in self.block:
            out = layer.forward(out, training, rng)
        Y = self._buffers.get("Y", X.shape, X.dtype)
        return np.add(out, X, out=Y)

    def backward(self, dY: Array) -> Array:
        # The block's backward may overwrite dY in place, so keep the skip path's copy first.
        skip = self._buffers.get("skip", dY.shape, dY.dtype)
        np.copyto(skip, dY)
        grad: Array | None = dY
        for layer in reversed(self.block):
            grad = layer.backward(grad)  # type: ignore[arg-type]
        assert grad is not None
        grad += skip
        return grad
