"""The multilayer perceptron: X(l+1) = sigma_l(X(l) W(l) + b(l)), samples as rows.

Parameters live in one flat buffer and gradients in another, with per-layer views, so an
optimizer can update the whole network with a dozen ufunc calls and early stopping can snapshot
it with one copy (what made the plain NumPy loop fast in PERF_NOTES.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlpcli.errors import UsageError
from mlpcli.nn import activations, initializers, losses
from mlpcli.nn.layers import ActivationLayer, BatchNorm, Dense, Dropout, Layer, Residual

Array = NDArray[np.floating]

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild a network; stored in the model file."""

    n_inputs: int
    hidden_layer_sizes: tuple[int, ...]
    n_outputs: int
    activation: tuple[str, ...]
    output_activation: str
    loss: str
    dtype: str = "float32"
    batchnorm: bool = False
    dropout: float = 0.0
    residual: bool = False
    weight_decay: float = 0.0
    init: str | None = None
    leaky_relu_slope: float = 0.01
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden_layer_sizes"] = list(self.hidden_layer_sizes)
        d["activation"] = list(self.activation)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Architecture:
        d = dict(d)
        d["hidden_layer_sizes"] = tuple(d["hidden_layer_sizes"])
        d["activation"] = tuple(d["activation"])
        return cls(**d)


def _check_architecture(arch: Architecture) -> None:
    if arch.n_inputs < 1 or arch.n_outputs < 1:
        raise UsageError("A network needs at least one input and one output.")
    if any(h < 1 for h in arch.hidden_layer_sizes):
        raise UsageError(
            f"--hidden sizes must be positive whole numbers; got "
            f"{','.join(map(str, arch.hidden_layer_sizes))}."
        )
    if len(arch.activation) != len(arch.hidden_layer_sizes):
        raise UsageError(
            f"--activation gives {len(arch.activation)} names for "
            f"{len(arch.hidden_layer_sizes)} hidden layers; give one name, or one per layer."
        )
    for name in arch.activation:
        if name not in activations.HIDDEN_ACTIVATIONS:
            raise UsageError(
                f"Unknown hidden activation '{name}'; choose one of: "
                f"{', '.join(activations.HIDDEN_ACTIVATIONS)}."
            )
    if arch.output_activation not in activations.OUTPUT_ACTIVATIONS:
        raise UsageError(
            f"Unknown output activation '{arch.output_activation}'; choose one of: "
            f"{', '.join(activations.OUTPUT_ACTIVATIONS)}."
        )
    if arch.dtype not in DTYPES:
        raise UsageError(f"Unknown dtype '{arch.dtype}'; choose one of: {', '.join(DTYPES)}.")
    if not 0.0 <= arch.dropout < 1.0:
        raise UsageError(f"--dropout must be in [0, 1); got {arch.dropout}.")
    if not arch.weight_decay >= 0:  # also refuses NaN
        raise UsageError(f"--weight-decay must be >= 0; got {arch.weight_decay}.")
    if arch.residual:
        sizes = arch.hidden_layer_sizes
        if len(sizes) < 2:
            raise UsageError(
                "--residual adds skip connections between hidden layers of equal width; "
                "it needs at least two hidden layers, e.g. --hidden 64,64."
            )
        for i in range(1, len(sizes)):
            if sizes[i] != sizes[i - 1]:
                raise UsageError(
                    f"--residual needs equal hidden widths; hidden layer {i + 1} maps "
                    f"{sizes[i - 1]} -> {sizes[i]} units. Use e.g. --hidden "
                    f"{','.join([str(sizes[0])] * len(sizes))}."
                )


def state_shapes(arch: Architecture) -> dict[str, tuple[int, ...]]:
    """The name and shape of every array `MLP.state_arrays()` gives for `arch`, computed
    without allocating anything: a model file's arrays are checked against it before loading."""
    shapes: dict[str, tuple[int, ...]] = {}
    sizes = [arch.n_inputs, *arch.hidden_layer_sizes]
    for i, (k_in, k_out) in enumerate(itertools.pairwise(sizes)):
        shapes[f"layer{i + 1}.W"] = (k_in, k_out)
        if arch.batchnorm:
            shapes[f"layer{i + 1}.gamma"] = shapes[f"layer{i + 1}.beta"] = (k_out,)
        else:
            shapes[f"layer{i + 1}.b"] = (k_out,)
    shapes["output.W"] = (sizes[-1], arch.n_outputs)
    shapes["output.b"] = (arch.n_outputs,)
    if arch.batchnorm:
        for i, k_out in enumerate(arch.hidden_layer_sizes):
            shapes[f"bn{i + 1}.running_mean"] = shapes[f"bn{i + 1}.running_var"] = (k_out,)
    return shapes


def n_parameters(arch: Architecture) -> int:
    """Trainable parameters of `arch` (no allocation): the size of the flat buffers."""
    return sum(
        math.prod(shape) for name, shape in state_shapes(arch).items() if ".running_" not in name
    )


def _dtype_name(dtype: Any) -> str:
    """'float32' for np.float32, "f4", "float32"...; unknown names pass through to be refused."""
    try:
        return str(np.dtype(dtype))
    except TypeError:
        return str(dtype)


class MLP:
    """A multilayer perceptron with a NumPy forward and backward pass.

    Hidden layer l: Dense -> [BatchNorm] -> activation -> [Dropout], wrapped in a skip
    connection X(l+1) = sigma(...) + X(l) with `residual` (every hidden layer after the first).
    Output: Dense -> output activation. With batch normalisation a dense layer has no bias,
    since the normalisation's beta takes its place.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden_layer_sizes: Sequence[int] = (),
        n_outputs: int = 1,
        activation: str | Sequence[str] = "relu",
        output_activation: str | None = None,
        loss: str = "mse",
        dtype: str = "float32",
        seed: int | np.random.Generator | None = None,
        batchnorm: bool = False,
        dropout: float = 0.0,
        residual: bool = False,
        weight_decay: float = 0.0,
        init: str | None = None,
        leaky_relu_slope: float = 0.01,
    ) -> None:
        hidden = tuple(int(h) for h in hidden_layer_sizes)
        names = (activation,) if isinstance(activation, str) else tuple(activation)
        if len(names) == 1:  # one name, alone or in a list, serves every hidden layer
            names = names * len(hidden)
        loss_fn = losses.get(loss)
        arch = Architecture(
            n_inputs=int(n_inputs),
            hidden_layer_sizes=hidden,
            n_outputs=int(n_outputs),
            activation=names,
            output_activation=output_activation or loss_fn.output_activation,
            loss=loss,
            dtype=_dtype_name(dtype),
            batchnorm=bool(batchnorm),
            dropout=float(dropout),
            residual=bool(residual),
            weight_decay=float(weight_decay),
            init=init,
            leaky_relu_slope=float(leaky_relu_slope),
        )
        self._build(arch, loss_fn, seed)

    @classmethod
    def from_architecture(
        cls, arch: Architecture, seed: int | np.random.Generator | None = None
    ) -> MLP:
        net = cls.__new__(cls)
        net._build(arch, losses.get(arch.loss), seed)
        return net

    def _build(
        self, arch: Architecture, loss_fn: losses.Loss, seed: int | np.random.Generator | None
    ) -> None:
        _check_architecture(arch)
        if arch.init is not None:
            initializers.get(arch.init)
        self.architecture = arch
        self.loss_fn = loss_fn
        self.dtype = np.dtype(arch.dtype)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.output_activation = activations.get(arch.output_activation)
        if loss_fn.fused and self.output_activation.name != loss_fn.output_activation:
            raise UsageError(
                f"Loss '{loss_fn.name}' needs output activation '{loss_fn.output_activation}', "
                f"not '{self.output_activation.name}'; change --loss or --output-activation."
            )

        self.layers: list[Layer] = []
        #: Per "layer l" (hidden layers, then the output): its dense layer and batch norm.
        self._groups: list[list[Layer]] = []
        sizes = [arch.n_inputs, *arch.hidden_layer_sizes]
        for i, (k_in, k_out) in enumerate(itertools.pairwise(sizes)):
            act = activations.get(arch.activation[i], arch.leaky_relu_slope)
            dense = Dense(k_in, k_out, bias=not arch.batchnorm, input_grad=i > 0)
            dense.init_name = arch.init or act.init  # type: ignore[attr-defined]
            block: list[Layer] = [dense]
            group: list[Layer] = [dense]
            if arch.batchnorm:
                bn = BatchNorm(k_out)
                bn.set_dtype(self.dtype)
                block.append(bn)
                group.append(bn)
            # In place: its input is the scratch output of the dense or batch-norm layer.
            block.append(ActivationLayer(act, inplace=True))
            if arch.dropout > 0:
                block.append(Dropout(arch.dropout))
            if arch.residual and i > 0:
                self.layers.append(Residual(block))
            else:
                self.layers.extend(block)
            self._groups.append(group)
        out_dense = Dense(sizes[-1], arch.n_outputs, input_grad=len(sizes) > 1)
        out_dense.init_name = arch.init or self.output_activation.init  # type: ignore[attr-defined]
        self.layers.append(out_dense)
        self._groups.append([out_dense])
        self._allocate()

    def _allocate(self) -> None:
        """Give every parameter a view into one flat buffer, then initialise it."""
        specs = [(layer, layer.param_specs()) for group in self._groups for layer in group]
        total = sum(int(np.prod(shape)) for _, layer_specs in specs for _, shape in layer_specs)
        self.flat_params = np.zeros(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self.param_names: list[str] = []
        self.layer_slices: list[slice] = []
        self._decay_views: list[tuple[Array, Array]] = []
        offset = 0
        for g, group in enumerate(self._groups):
            start = offset
            for layer in group:
                params, grads = [], []
                for name, shape in layer.param_specs():
                    size = int(np.prod(shape))
                    params.append(self.flat_params[offset : offset + size].reshape(shape))
                    grads.append(self.flat_grads[offset : offset + size].reshape(shape))
                    self.param_names.append(f"{self.layer_names[g]}.{name}")
                    offset += size
                layer.bind(params, grads)
                if isinstance(layer, Dense):
                    init = initializers.get(layer.init_name)  # type: ignore[attr-defined]
                    params[0][...] = init(self.rng, layer.n_in, layer.n_out)
                    self._decay_views.append((params[0], grads[0]))
                elif isinstance(layer, BatchNorm):
                    params[0][...] = 1.0
            self.layer_slices.append(slice(start, offset))

    # ----------------------------------------------------------------- introspection
    @property
    def layer_names(self) -> list[str]:
        """`layer1` ... `layerN` for hidden layers, then `output`."""
        return [f"layer{i + 1}" for i in range(len(self._groups) - 1)] + ["output"]

    def parameters(self) -> list[Array]:
        """Live parameter arrays in a fixed order: [W1, b1, W2, b2, ...]; BN's gamma, beta follow
        their layer's W (whose bias they replace). Changing them in place changes the network."""
        return [p for group in self._groups for layer in group for p in layer.params]

    def gradients(self) -> list[Array]:
        """Gradient arrays aligned with `parameters()`, as filled by the last backward pass."""
        return [g for group in self._groups for layer in group for g in layer.grads]

    def decay_masks(self) -> list[float]:
        """1.0 for weight matrices, 0.0 for biases and batch-norm parameters, per parameter."""
        return [1.0 if name.endswith(".W") else 0.0 for name in self.param_names]

    def flat_decay_mask(self) -> Array:
        """`decay_masks()` expanded over the flat parameter buffer."""
        mask = np.zeros_like(self.flat_params)
        offset = 0
        for p, m in zip(self.parameters(), self.decay_masks(), strict=True):
            mask[offset : offset + p.size] = m
            offset += p.size
        return mask

    def n_parameters(self) -> list[int]:
        """Trainable parameter count per layer (hidden layers, then the output)."""
        return [s.stop - s.start for s in self.layer_slices]

    def layer_grad_norms(self) -> list[float]:
        """Euclidean norm of each layer's gradient (the lecture's "watch the gradient!")."""
        return [
            float(np.sqrt(np.dot(self.flat_grads[s], self.flat_grads[s])))
            for s in self.layer_slices
        ]

    def batchnorm_layers(self) -> list[BatchNorm]:
        return [layer for group in self._groups for layer in group if isinstance(layer, BatchNorm)]

    def state_arrays(self) -> dict[str, Array]:
        """Every array that defines the trained network: parameters and running statistics."""
        state = {
            name: p.copy() for name, p in zip(self.param_names, self.parameters(), strict=True)
        }
        for i, bn in enumerate(self.batchnorm_layers()):
            state[f"bn{i + 1}.running_mean"] = bn.running_mean.copy()
            state[f"bn{i + 1}.running_var"] = bn.running_var.copy()
        return state

    def load_state_arrays(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of `state_arrays()`; shapes are checked against the architecture."""
        targets: dict[str, np.ndarray] = dict(zip(self.param_names, self.parameters(), strict=True))
        for i, bn in enumerate(self.batchnorm_layers()):
            targets[f"bn{i + 1}.running_mean"] = bn.running_mean
            targets[f"bn{i + 1}.running_var"] = bn.running_var
        missing = sorted(set(targets) - set(state))
        extra = sorted(set(state) - set(targets))
        if missing or extra:
            raise ValueError(
                f"arrays do not match the architecture: missing {missing}, extra {extra}"
            )
        values = {name: np.asarray(state[name]) for name in targets}
        for name, target in targets.items():
            if values[name].shape != target.shape:
                raise ValueError(
                    f"array '{name}' has shape {values[name].shape}, expected {target.shape}"
                )
        # Only now write: a mismatch must not leave the network half loaded.
        for name, target in targets.items():
            target[...] = values[name]

    # ----------------------------------------------------------------- computation
    def _as_input(self, X: np.ndarray) -> Array:
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.architecture.n_inputs:
            raise ValueError(
                f"expected X of shape (n, {self.architecture.n_inputs}), got {X.shape}"
            )
        return X

    def _logits(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        out = X
        for layer in self.layers:
            out = layer.forward(out, training, rng)
        return out

    def forward(self, X: np.ndarray, training: bool = False, batch_size: int = 65536) -> Array:
        """The output after the output activation, computed in batches to bound memory."""
        X = self._as_input(X)
        result = np.empty((X.shape[0], self.architecture.n_outputs), dtype=self.dtype)
        for rows in self.inference_blocks(X.shape[0], batch_size):
            Z = self._logits(X[rows], training, self.rng)
            self.output_activation.forward(Z, out=result[rows])
        return result

    def inference_blocks(self, n: int, batch_size: int) -> Iterator[slice]:
        """The row blocks of a pass over n rows. A pass of several blocks lets the layers'
        scratch go before its shorter last block and after it: kept, the scratch of each block
        size stayed (a 256,128 network scoring 1M rows held 0.17 GB of it at once)."""
        for start in range(0, n, batch_size):
            if start and n - start < batch_size:
                self.release_scratch()
            yield slice(start, start + batch_size)
        if n > batch_size:
            self.release_scratch()

    def release_scratch(self) -> None:
        """Let go of every layer's scratch arrays and what forward kept for backward; the next
        batch allocates its own again."""
        for layer in self.layers:
            layer.release()

    def loss_and_gradients(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        training: bool = True,
        rng: np.random.Generator | None = None,
    ) -> tuple[float, list[Array]]:
        """Mean loss (plus the L2 penalty) and its gradient for every parameter.

        The gradient arrays are the network's own buffers, overwritten by the next call.
        `rng` draws the dropout masks (the network's generator by default).
        """
        loss = self._backprop(
            self._as_input(X),
            np.asarray(Y, dtype=self.dtype),
            sample_weight,
            training,
            rng or self.rng,
        )
        return loss, self.gradients()

    def _backprop(
        self,
        X: Array,
        Y: Array,
        sample_weight: np.ndarray | None,
        training: bool,
        rng: np.random.Generator | None,
    ) -> float:
        """Forward and backward over one batch; fills `flat_grads`, returns the loss."""
        Z = self._logits(X, training, rng)
        loss, grad = self.loss_fn(Y, Z, self.output_activation, sample_weight)
        for layer in reversed(self.layers):
            grad = layer.backward(grad)  # type: ignore[assignment]
        decay = self.architecture.weight_decay
        if decay:
            # L2 penalty (decay / 2) sum ||W||^2 on weight matrices only, not biases or BN.
            penalty = 0.0
            for W, dW in self._decay_views:
                penalty += float(np.dot(W.ravel(), W.ravel()))
                dW += decay * W
            loss += 0.5 * decay * penalty
        return loss

    def loss(self, X: np.ndarray, Y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        """Inference-mode loss (no dropout, running BN statistics), without the L2 penalty."""
        X = self._as_input(X)
        Y = np.asarray(Y, dtype=self.dtype)
        Z = self._logits(X, False, None)
        return self.loss_fn(Y, Z, self.output_activation, sample_weight)[0]

    def input_gradient(self, X: np.ndarray, V: np.ndarray, batch_size: int = 65536) -> Array:
        """d sum(V * output) / d X in inference mode (no dropout, running BN statistics).

        One vector-Jacobian product per row: `V` (n, n_outputs) weighs the outputs (a one-hot
        row picks one class), so saliency and integrated gradients need no finite differences.
        The parameter gradients of the last training step are left untouched.
        """
        X = self._as_input(X)
        V = np.asarray(V, dtype=self.dtype)
        if V.shape != (X.shape[0], self.architecture.n_outputs):
            raise ValueError(
                f"expected V of shape ({X.shape[0]}, {self.architecture.n_outputs}), got {V.shape}"
            )
        saved = self.flat_grads.copy()  # the layers' backward writes parameter gradients
        first, rest = self.layers[0], self.layers[1:]
        result = np.empty_like(X)
        try:
            for start in range(0, X.shape[0], batch_size):
                stop = start + batch_size
                Z = self._logits(X[start:stop], False, None)
                A = self.output_activation.forward(Z)
                grad = self.output_activation.backward(V[start:stop].copy(), Z, A)
                for layer in reversed(rest):
                    grad = layer.backward(grad)  # type: ignore[assignment]
                if isinstance(first, Dense):
                    # The first layer never computes dX in training; dX = dZ W^T here.
                    np.matmul(grad, first.params[0].T, out=result[start:stop])
                else:
                    result[start:stop] = first.backward(grad)
        finally:
            self.flat_grads[...] = saved
        return result
