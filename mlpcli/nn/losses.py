"""Loss functions: weighted means over samples of a per-sample loss.

Each loss returns the gradient with respect to the output layer's pre-activation Z. Cross-entropies
are computed from the logits Z (log-sum-exp), so saturated outputs give finite losses, and paired
with their output activation the gradient is simply `P - Y` (scikit-learn's `_backprop` does the
same). The other losses go through the output activation's derivative.

Per-sample losses, averaged over output columns (summed for `ce`, whose Y rows are one-hot):
- mse:   mean_j (p_j - y_j)^2
- mae:   mean_j |p_j - y_j|
- huber: mean_j [ r^2 / 2 if |r| <= delta else delta (|r| - delta / 2) ],  r = p_j - y_j
- bce:   mean_j [ max(z, 0) - z y + log(1 + e^-|z|) ]                        (sigmoid output)
- ce:    logsumexp(z) - sum_j y_j z_j                                         (softmax output)
Total: sum_i w_i l_i / sum_i w_i, with w_i = 1 without sample weights.

Label smoothing (Szegedy et al. 2016; RealMLP-TD uses epsilon = 0.1) trains bce and ce against
y' = (1 - epsilon) y + epsilon m / K instead of y, where K is the number of classes (2 for each
bce column) and m the row's target mass (1 for a one-hot row), so the gradient is still P - y'.
It is off (epsilon = 0) by default; `value()`, the loss of given probabilities, never smooths.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mlpcli.errors import UsageError, choose
from mlpcli.nn.activations import Activation
from mlpcli.nn.scratch import ones

Array = NDArray[np.floating]


def _row_sum(A: Array) -> Array:
    """Sum over each row, (n, k) -> (n,). A matrix-vector product with ones: NumPy's reduce
    along a short last axis takes 4 to 8 us for (256, 3), BLAS 2 us (measured, float32)."""
    sums: Array = np.matmul(A, ones(A.shape[1], A.dtype))
    return sums


def _row_max(Z: Array) -> Array:
    """Maximum of each row, (n, k) -> (n, 1); a loop over columns for a few columns, where
    np.max(axis=1) is 2 to 5 times slower (an unvectorised loop along the short axis)."""
    if Z.shape[1] > 8:
        return np.maximum.reduce(Z, axis=1, keepdims=True)
    m = Z[:, :1].copy()
    for j in range(1, Z.shape[1]):
        np.maximum(m, Z[:, j : j + 1], out=m)
    return m


class Loss:
    """Base class. Subclasses define either `_from_logits` (fused) or `_from_output`."""

    name: ClassVar[str]
    #: The output activation this loss pairs with by default.
    output_activation: ClassVar[str] = "identity"
    #: Fused losses are computed from logits and require exactly this output activation.
    fused: ClassVar[bool] = False

    def __call__(
        self,
        Y: Array,
        Z: Array,
        activation: Activation,
        sample_weight: ArrayLike | None = None,
    ) -> tuple[float, Array]:
        """Return (loss, dZ) for targets Y and output pre-activations Z, dZ in Z's dtype."""
        Y = np.asarray(Y, dtype=Z.dtype)  # float64 or integer targets must not upcast dZ
        if self.fused:
            if activation.name != self.output_activation:
                raise UsageError(
                    f"Loss '{self.name}' needs output activation '{self.output_activation}', "
                    f"not '{activation.name}'; change --loss or --output-activation."
                )
            per_sample, dZ = self._from_logits(Y, Z)
        else:
            P = activation.forward(Z)
            per_sample, dP = self._from_output(Y, P)
            dZ = activation.backward(dP, Z, P)
        if sample_weight is None:
            scale: Array | float = 1.0 / len(Y)
            # = per_sample.mean(dtype=np.float64), without mean's Python wrapper (every batch)
            loss = float(np.add.reduce(per_sample, dtype=np.float64)) / len(Y)
        else:
            w = np.asarray(sample_weight, dtype=Z.dtype).reshape(-1)
            if len(w) != len(Y):
                raise ValueError(f"sample_weight has {len(w)} values for {len(Y)} samples")
            total = w.sum(dtype=np.float64)
            if total == 0:
                # A batch whose samples all weigh nothing carries no information: no step, no NaN.
                dZ[...] = 0
                return 0.0, dZ
            loss = float(np.dot(per_sample.astype(np.float64), w) / total)
            scale = (w / Z.dtype.type(total))[:, None]
        dZ *= scale
        return loss, dZ

    def value(self, Y: Array, P: Array, sample_weight: ArrayLike | None = None) -> float:
        """The loss of already-activated outputs P (probabilities or predictions)."""
        per_sample = self._value_from_output(Y, P)
        if sample_weight is None:
            return float(per_sample.mean(dtype=np.float64))
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        total = w.sum()
        return float(np.dot(per_sample.astype(np.float64), w) / total) if total else 0.0

    def _value_from_output(self, Y: Array, P: Array) -> Array:
        return self._from_output(Y, P)[0]

    def _from_logits(self, Y: Array, Z: Array) -> tuple[Array, Array]:
        raise NotImplementedError

    def _from_output(self, Y: Array, P: Array) -> tuple[Array, Array]:
        raise NotImplementedError


class MSE(Loss):
    name = "mse"

    def _from_output(self, Y: Array, P: Array) -> tuple[Array, Array]:
        R = P - Y
        per_sample = np.mean(R * R, axis=1)
        R *= 2.0 / Y.shape[1]
        return per_sample, R


class MAE(Loss):
    name = "mae"

    def _from_output(self, Y: Array, P: Array) -> tuple[Array, Array]:
        R = P - Y
        per_sample = np.mean(np.abs(R), axis=1)
        return per_sample, np.sign(R) / Y.shape[1]


class Huber(Loss):
    """Quadratic near zero, linear beyond `delta`: robust to outlying targets."""

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        self.delta = delta

    def _from_output(self, Y: Array, P: Array) -> tuple[Array, Array]:
        R = P - Y
        size = np.abs(R)
        small = size <= self.delta
        per_element = np.where(small, 0.5 * R * R, self.delta * (size - 0.5 * self.delta))
        grad = np.where(small, R, self.delta * np.sign(R)) / Y.shape[1]
        return per_element.mean(axis=1), grad.astype(P.dtype, copy=False)


class _Smoothed(Loss):
    """A classification loss that can train against label-smoothed targets."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:  # also refuses NaN
            raise UsageError(f"--label-smoothing must be in [0, 1); got {label_smoothing}.")
        self.label_smoothing = float(label_smoothing)

    def _smooth(self, Y: Array, n_classes: int, mass: Array | float) -> Array:
        """y' = (1 - epsilon) y + epsilon m / K; Y itself when epsilon is 0 (bit-identical)."""
        eps = self.label_smoothing
        if not eps:
            return Y
        return (1.0 - eps) * Y + (eps / n_classes) * mass


class BinaryCrossEntropy(_Smoothed):
    name = "bce"
    output_activation = "sigmoid"
    fused = True

    def _from_logits(self, Y: Array, Z: Array) -> tuple[Array, Array]:
        Y = self._smooth(Y, 2, 1.0)
        # log(1 + e^-|z|) never overflows; max(z,0) - z y completes -[y log p + (1-y) log(1-p)].
        per_element = np.maximum(Z, 0.0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))
        P = 0.5 * (1.0 + np.tanh(0.5 * Z))
        P -= Y
        P /= Y.shape[1]
        return per_element.mean(axis=1), P

    def _value_from_output(self, Y: Array, P: Array) -> Array:
        eps = np.finfo(P.dtype).eps
        P = np.clip(P, eps, 1.0 - eps)
        value: Array = -np.mean(Y * np.log(P) + (1.0 - Y) * np.log1p(-P), axis=1)
        return value


class CrossEntropy(_Smoothed):
    name = "ce"
    output_activation = "softmax"
    fused = True

    def _from_logits(self, Y: Array, Z: Array) -> tuple[Array, Array]:
        if self.label_smoothing:
            Y = self._smooth(Y, Y.shape[1], _row_sum(Y)[:, None])
        # Called every batch on small arrays: row reductions by BLAS, temporaries reused.
        shifted = np.subtract(Z, _row_max(Z))
        exp = np.exp(shifted)
        total = _row_sum(exp)[:, None]
        # sum_j y_j (lse - z_j), so dZ = softmax(Z) sum_j y_j - Y: softmax(Z) - Y for one-hot
        # rows, and still right for soft or all-zero target rows (the sum costs n additions).
        np.subtract(np.log(total), shifted, out=shifted)
        shifted *= Y
        per_sample = _row_sum(shifted)
        weight = _row_sum(Y)[:, None]
        weight /= total
        exp *= weight
        exp -= Y
        return per_sample, exp

    def _value_from_output(self, Y: Array, P: Array) -> Array:
        eps = np.finfo(P.dtype).eps
        value: Array = -np.sum(Y * np.log(np.clip(P, eps, 1.0)), axis=1)
        return value


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (MSE, MAE, Huber, BinaryCrossEntropy, CrossEntropy)
}


def get(name: str, label_smoothing: float = 0.0) -> Loss:
    """Build a loss from its command-line name; `label_smoothing` applies to bce and ce only."""
    cls = choose("loss", name, LOSSES)
    if label_smoothing:
        if not issubclass(cls, _Smoothed):
            raise UsageError(
                f"--label-smoothing applies to the classification losses bce and ce, not '{name}'."
            )
        return cls(label_smoothing)
    return cls()
