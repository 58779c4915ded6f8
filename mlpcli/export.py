"""Export a model file for serving elsewhere: ONNX, written with `onnx.helper` (the `onnx` extra).

The ONNX graph is the whole inference path of `mlpcli predict`:

- inputs: `numeric`, float32 (N, k), the raw numeric feature columns in the order listed in the
  model's metadata (`numeric_columns`), NaN for a missing value; and one string input (N, 1) per
  categorical column, named after the column, holding the level as mlpcli spells it (integral
  numbers without `.0`) and "" for a missing value;
- the stored preprocessing: log1p, imputation, scaling, smooth clipping, missing indicators,
  one-hot encoding (an unseen level encodes as the pooled level '__other__' where the column has
  one, else as all zeros, as in mlpcli) and frequency encoding (a level's training share);
- the network: dense layers, batch normalisation (running statistics), every hidden
  activation, skip connections (dropout is the identity at inference), the output activation;
- or the recipe's network (`--preset realmlp_td`, `nn.recipe`), with its member axis: each of
  its K members is a (K, N, k) slice of every tensor, as in `nn.batched`: periodic (PBLD) or
  piecewise-linear (PLE) numeric embeddings, the categorical embedding of many-level columns,
  the per-feature scale, dense layers (packed, or BatchEnsemble's shared weights with rank-1
  adapters; the NTK gain folded into the weights), parametric activations x + alpha (f(x) - x),
  the output activation, the regression clamp to the training targets' range, then the mean
  over members (of probabilities for classification), as `predict` averages them;
- outputs: classification `label` (strings; (N, t) for multilabel, at the model's decision
  threshold: 0.5 unless `train --threshold` stored one; a `--calibrate` temperature is folded into
  the output layer, so the graph applies it too)
  and `probabilities` (one column per label, as `proba_<label>`); regression `prediction`
  (float64 (N, t), in the targets' units); and for a recipe ensemble `spread`, the members'
  standard deviation of each probability or value (`predict --spread`'s `spread_` columns).

Each format is a small class in `FORMATS`; `unsupported(metadata)` says why a model cannot be
exported (read by `inspect`, without importing onnx).

About 630 lines on purpose: the registries of builders (activations, the MLP's layers, the
recipe's member layers, networks, task outputs) all write into one `_Graph` and read the layers
of `nn` from the outside; split up, each would import the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mlpcli import __version__
from mlpcli import task as tasks
from mlpcli.errors import UsageError, choose, install_hint
from mlpcli.modelfile import LEVEL_KINDS
from mlpcli.nn.activations import SELU_ALPHA, SELU_LAMBDA
from mlpcli.outputs import atomic_path

if TYPE_CHECKING:
    from mlpcli.nn.layers import Layer
    from mlpcli.trained import TrainedModel

#: The ONNX operator set the graphs use (string Equal needs 19).
OPSET = 20
#: The string input value that stands for a missing categorical cell.
MISSING_STRING = ""
NUMERIC_INPUT = "numeric"


class _Graph:
    """Nodes and constants under construction, with fresh names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.constants: list[Any] = []
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: Any, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self._name("c")
        if array.dtype.kind in "OUS":
            strings: Any = [str(v).encode("utf-8") for v in array.ravel()]
            tensor = self.helper.make_tensor(name, 8, array.shape, strings)  # 8: string
        else:
            tensor = self.numpy_helper.from_array(array, name)
        self.constants.append(tensor)
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attrs: Any) -> str:
        out = output or self._name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


# --------------------------------------------------------------------------- activations
def _softplus(g: _Graph, z: str, dtype: np.dtype) -> str:
    # max(z, 0) + log(1 + e^-|z|): never overflows, as mlpcli's own softplus.
    tail = g.op("Log", g.op("Add", g.const(1.0, dtype), g.op("Exp", g.op("Neg", g.op("Abs", z)))))
    return g.op("Add", g.op("Relu", z), tail)


def _gelu(g: _Graph, z: str, dtype: np.dtype) -> str:
    # The tanh approximation, as mlpcli's: z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) / 2.
    cube = g.op("Mul", g.op("Mul", z, z), z)
    inner = g.op("Add", z, g.op("Mul", cube, g.const(0.044715, dtype)))
    t = g.op("Tanh", g.op("Mul", inner, g.const(np.sqrt(2.0 / np.pi), dtype)))
    half = g.op("Mul", g.op("Add", t, g.const(1.0, dtype)), g.const(0.5, dtype))
    return g.op("Mul", z, half)


def _elu(g: _Graph, z: str, dtype: np.dtype, alpha: float, scale: float = 1.0) -> str:
    # scale (max(z, 0) + alpha (e^min(z, 0) - 1)), as mlpcli's ELU and SELU.
    zero = g.const(0.0, dtype)
    negative = g.op("Sub", g.op("Exp", g.op("Min", z, zero)), g.const(1.0, dtype))
    out = g.op("Add", g.op("Relu", z), g.op("Mul", negative, g.const(alpha, dtype)))
    return out if scale == 1.0 else g.op("Mul", out, g.const(scale, dtype))


def _mish(g: _Graph, z: str, dtype: np.dtype) -> str:
    return g.op("Mul", z, g.op("Tanh", _softplus(g, z, dtype)))  # z tanh(softplus(z))


def _named(op_type: str, **attrs: Any) -> Callable[[_Graph, str, Any, Any], str]:
    return lambda g, z, dtype, activation: g.op(op_type, z, **attrs)


#: Activation name -> builder of its ONNX nodes: f(graph, input, dtype, activation object).
#: Built from operators onnxruntime runs in float32 and float64 alike (its Elu, Selu, Mish,
#: LeakyRelu and Softplus kernels are float32 only).
ACTIVATIONS: dict[str, Callable[[_Graph, str, Any, Any], str]] = {
    "identity": _named("Identity"),
    "sigmoid": _named("Sigmoid"),
    "tanh": _named("Tanh"),
    "relu": _named("Relu"),
    "leaky_relu": lambda g, z, dtype, act: g.op(  # max(z, slope z)
        "Max", z, g.op("Mul", z, g.const(act.slope, dtype))
    ),
    "softplus": lambda g, z, dtype, act: _softplus(g, z, dtype),
    "elu": lambda g, z, dtype, act: _elu(g, z, dtype, act.alpha),
    "selu": lambda g, z, dtype, act: _elu(g, z, dtype, SELU_ALPHA, SELU_LAMBDA),
    "mish": lambda g, z, dtype, act: _mish(g, z, dtype),
    "gelu": lambda g, z, dtype, act: _gelu(g, z, dtype),
    "softmax": _named("Softmax", axis=-1),  # the last axis: classes, with or without members
}

#: Preprocessing clip name -> builder f(graph, x) on float64 values.
CLIPS: dict[str, Callable[[_Graph, str], str]] = {
    "none": lambda g, x: x,
    "smooth": lambda g, x: g.op(
        "Div",
        x,
        g.op(
            "Sqrt",
            g.op("Add", g.const(1.0), g.op("Pow", g.op("Div", x, g.const(3.0)), g.const(2.0))),
        ),
    ),
}


# --------------------------------------------------------------------------- the graph
def _preprocessing(g: _Graph, model: TrainedModel, inputs: list[Any]) -> str:
    """Raw inputs -> the network's input matrix, in the preprocessor's output column order."""
    from mlpcli.preprocessing import MISSING_LEVEL, OTHER_LEVEL

    pre = model.preprocessor
    dtype = model.net.dtype
    onnx_dtype = g.helper.np_dtype_to_tensor_dtype(dtype)
    state, _ = pre.to_state()
    columns = state["columns"]
    numeric = [c for c in columns if c["kind"] == "numeric"]
    blocks: list[str] = []
    position: dict[tuple[str, str], int] = {}  # (column, output name) -> index in the concat
    width = 0
    if numeric:
        inputs.append(
            g.helper.make_tensor_value_info(NUMERIC_INPUT, 1, ["N", len(numeric)])
        )  # 1: float32
        raw = g.op("Cast", NUMERIC_INPUT, to=11)  # float64, as mlpcli's preprocessing computes
        missing = g.op("IsNaN", raw)
        x = raw
        if pre.log1p:
            x = g.op("Log", g.op("Add", x, g.const(1.0)))
        x = g.op("Where", missing, g.const(pre.impute_values_[None, :]), x)
        x = g.op(
            "Div", g.op("Sub", x, g.const(pre.centers_[None, :])), g.const(pre.scales_[None, :])
        )
        x = CLIPS[pre.clip](g, x)
        blocks.append(g.op("Cast", x, to=onnx_dtype))
        for j, c in enumerate(numeric):
            position[(c["name"], "value")] = j
        width = len(numeric)
        flagged = [j for j, c in enumerate(numeric) if c["indicator"]]
        if flagged:
            chosen = g.op("Gather", missing, g.const(np.array(flagged, dtype=np.int64)), axis=1)
            blocks.append(g.op("Cast", chosen, to=onnx_dtype))
            for k, j in enumerate(flagged):
                position[(numeric[j]["name"], "indicator")] = width + k
            width += len(flagged)
    for c in columns:
        if c["kind"] not in LEVEL_KINDS:
            continue
        name = c["name"]
        inputs.append(g.helper.make_tensor_value_info(name, 8, ["N", 1]))  # 8: string
        levels = [MISSING_STRING if v == MISSING_LEVEL else v for v in c["levels"]]
        # OTHER_LEVEL (pooled rare levels) is on for any level the others do not match.
        matched = [v for v in levels if v != OTHER_LEVEL]
        hot = g.op("Equal", name, g.const(np.array([matched], dtype=object)))
        if c["kind"] == "frequency":  # the level's training share: one-hot times the shares
            counts = np.asarray(c["counts"], dtype=np.float64)
            share = g.op(
                "MatMul", g.op("Cast", hot, to=11), g.const((counts / counts.sum())[:, None])
            )
            blocks.append(g.op("Cast", share, to=onnx_dtype))
            position[(name, "value")] = width
            width += 1
            continue
        blocks.append(g.op("Cast", hot, to=onnx_dtype))
        if OTHER_LEVEL in c["levels"]:  # always the last level: on where no other level is
            seen = g.op("ReduceMax", blocks[-1], g.const(np.array([1])), keepdims=1)
            other = g.op("Sub", g.const(np.ones((1, 1), dtype=dtype)), seen)
            if MISSING_LEVEL not in c["levels"]:  # a missing cell is then all zeros
                blank = g.op("Equal", name, g.const(np.array([[MISSING_STRING]], dtype=object)))
                other = g.op("Where", blank, g.const(np.zeros((1, 1), dtype=dtype)), other)
            blocks.append(other)
        for k, level in enumerate(c["levels"]):
            position[(name, level)] = width + k
        width += len(levels)
    order = []
    for c in columns:
        if c["kind"] == "categorical":
            order += [position[(c["name"], level)] for level in c["levels"]]
        else:
            order.append(position[(c["name"], "value")])
            if c["indicator"]:
                order.append(position[(c["name"], "indicator")])
    joined = blocks[0] if len(blocks) == 1 else g.op("Concat", *blocks, axis=1)
    if order == list(range(width)):
        return joined
    return g.op("Gather", joined, g.const(np.array(order, dtype=np.int64)), axis=1)


def _layer(g: _Graph, layer: Layer, x: str, dtype: np.dtype) -> str:
    """One network layer in inference mode; each kind of `nn.layers` has its entry."""
    return LAYERS[layer.kind](g, layer, x, dtype)


def _dense(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    z = g.op("MatMul", x, g.const(layer.params[0]))
    return g.op("Add", z, g.const(layer.params[1])) if layer.bias else z


def _batchnorm(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    # As BatchNorm.forward in inference: (x - running_mean) inv_std gamma + beta.
    inv_std = 1.0 / np.sqrt(layer.running_var + layer.eps)
    xhat = g.op("Mul", g.op("Sub", x, g.const(layer.running_mean)), g.const(inv_std, dtype))
    gamma, beta = layer.params
    return g.op("Add", g.op("Mul", xhat, g.const(gamma)), g.const(beta))


def _activation(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    return ACTIVATIONS[layer.activation.name](g, x, dtype, layer.activation)


def _residual(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    out = x
    for inner in layer.block:
        out = _layer(g, inner, out, dtype)
    return g.op("Add", out, x)


def _identity(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    return x  # dropout, at inference


#: f(graph, layer, input, dtype) -> the layer's output, in inference mode.
LayerBuilder = Callable[[_Graph, Any, str, np.dtype], str]
#: Layer kind (`nn.layers`) -> builder of its inference nodes.
LAYERS: dict[str, LayerBuilder] = {
    "dense": _dense,
    "batchnorm": _batchnorm,
    "activation": _activation,
    "dropout": _identity,
    "residual": _residual,
}


def _classic_network(g: _Graph, model: TrainedModel, x: str) -> tuple[str, str | None]:
    """The lecture's MLP: its layers, then the output activation; (N, outputs), no members."""
    dtype = model.net.dtype
    for layer in model.net.layers:
        x = _layer(g, layer, x, dtype)
    output_activation = model.net.output_activation
    return ACTIVATIONS[output_activation.name](g, x, dtype, output_activation), None


# --------------------------------------------------------------------------- the recipe's layers
# Each takes and gives (K, N, k) tensors, member axis first, with the layer's own (K, ...)
# arrays as constants, as the layer of `nn.batched` computes them in inference mode.
def _per_member(array: np.ndarray) -> np.ndarray:
    """A per-member (K, k) row as (K, 1, k), to broadcast over the rows."""
    return array[:, None, :]


def _gained(layer: Any) -> np.ndarray:
    """g W, the NTK gain folded into the weights, formed as the dense layers form it."""
    W: np.ndarray = layer.params[0]
    return W if layer.gain == 1.0 else np.multiply(W, layer.gain)


def _member_dense(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    # Z = X (g W) + b
    b = layer.params[1]
    return g.op("Add", g.op("MatMul", x, g.const(_gained(layer))), g.const(_per_member(b)))


def _batch_ensemble_dense(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    # Z_k = ((X_k * r_k) (g W)) * s_k + b_k, one shared W for every member.
    _, r, s, b = layer.params
    shared = g.op("MatMul", g.op("Mul", x, g.const(_per_member(r))), g.const(_gained(layer)))
    return g.op("Add", g.op("Mul", shared, g.const(_per_member(s))), g.const(_per_member(b)))


def _feature_scale(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    return g.op("Mul", x, g.const(_per_member(layer.params[0])))


def _parametric_activation(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    # Y = X + alpha (f(X) - X), alpha per member and unit.
    f = _activation(g, layer, x, dtype)
    mixed = g.op("Mul", g.op("Sub", f, x), g.const(_per_member(layer.params[0])))
    return g.op("Add", mixed, x)


def _numeric(g: _Graph, layer: Any, x: str) -> str:
    """The embedded numeric columns of (K, N, k) inputs as (K, N, d, 1)."""
    chosen = g.op("Gather", x, g.const(layer.numeric.astype(np.int64)), axis=2)
    return g.op("Unsqueeze", chosen, g.const(np.array([3], dtype=np.int64)))


def _flat_embedding(g: _Graph, E: str, width: int, x: str) -> str:
    """(K, N, d, h) embeddings -> [(K, N, d h), inputs] along the last axis."""
    flat = g.op("Reshape", E, g.const(np.array([0, 0, width], dtype=np.int64)))
    return g.op("Concat", flat, x, axis=2)


def _periodic(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    # PBLD: E_j = cos(2 pi x_j w_j + b_j) V_j + c_j per numeric column j, then the inputs.
    if layer.numeric.size == 0:
        return x
    w, b, V, c = layer.params  # (K, d, 1, F), (K, d, 1, F), (K, d, F, h), (K, d, 1, h)
    columns = g.op("Transpose", _numeric(g, layer, x), perm=[0, 2, 1, 3])  # (K, d, N, 1)
    A = g.op("Add", g.op("Mul", columns, g.const((2.0 * np.pi) * w)), g.const(b))
    E = g.op("Add", g.op("MatMul", g.op("Cos", A), g.const(V)), g.const(c))  # (K, d, N, h)
    rows_first = g.op("Transpose", E, perm=[0, 2, 1, 3])  # (K, N, d, h)
    return _flat_embedding(g, rows_first, layer.numeric.size * layer.hidden, x)


def _piecewise_linear(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    # PLE: U_jt = (x_j - e_jt) / (e_j,t+1 - e_jt), clipped to [0, 1] where the bin says so.
    if layer.numeric.size == 0:
        return x
    left, inv, clip_low, clip_high = layer.bins(dtype)  # (d, T) each, as its forward uses
    U = g.op("Mul", g.op("Sub", _numeric(g, layer, x), g.const(left)), g.const(inv))
    low = g.op("And", g.op("Less", U, g.const(0.0, dtype)), g.const(clip_low))
    high = g.op("And", g.op("Greater", U, g.const(1.0, dtype)), g.const(clip_high))
    U = g.op("Where", low, g.const(0.0, dtype), g.op("Where", high, g.const(1.0, dtype), U))
    return _flat_embedding(g, U, layer.numeric.size * layer.n_bins, x)


def _categorical_embedding(g: _Graph, layer: Any, x: str, dtype: np.dtype) -> str:
    # [the other columns, onehot_j E_j for each many-level column j]
    parts = []
    if layer.keep.size:
        parts.append(g.op("Gather", x, g.const(layer.keep.astype(np.int64)), axis=2))
    for (a, b), E in zip(layer.blocks, layer.params, strict=True):
        onehot = g.op("Gather", x, g.const(np.arange(a, b, dtype=np.int64)), axis=2)
        parts.append(g.op("MatMul", onehot, g.const(E)))
    return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=2)


#: Recipe layer kind (`nn.batched.LAYERS`) -> builder of its inference nodes on (K, N, k).
RECIPE_LAYERS: dict[str, LayerBuilder] = {
    "dense": _member_dense,
    "be_dense": _batch_ensemble_dense,
    "scale": _feature_scale,
    "act": _parametric_activation,
    "dropout": _identity,
    "pbld": _periodic,
    "ple": _piecewise_linear,
    "cat_embedding": _categorical_embedding,
}


def _recipe_network(g: _Graph, model: TrainedModel, x: str) -> tuple[str, str | None]:
    """The recipe's K members on the same rows, each through its layers and the output
    activation (and clamp), then their mean: `RecipeNet.forward`; (N, outputs), and the
    (K, N, outputs) member outputs of an ensemble."""
    net: Any = model.net
    dtype = net.dtype
    members = np.array([net.config.n_members, 1, 1], dtype=np.int64)
    out = g.op("Expand", g.op("Unsqueeze", x, g.const(np.array([0]))), g.const(members))
    for layer in net.layers:
        out = RECIPE_LAYERS[layer.kind](g, layer, out, dtype)
    out = ACTIVATIONS[net.output_activation.name](g, out, dtype, net.output_activation)
    if net.config.clamp_output:  # np.clip(out, low, high)
        out = g.op("Min", g.op("Max", out, g.const(net.output_low)), g.const(net.output_high))
    mean = g.op("ReduceMean", out, g.const(np.array([0])), keepdims=0)
    return mean, out if net.config.n_members > 1 else None


#: Network kind (`network_kind`) -> builder of its output P (N, outputs) from its input matrix,
#: and of an ensemble's member outputs (K, N, outputs), else None.
NETWORKS: dict[str, Callable[[_Graph, Any, str], tuple[str, str | None]]] = {
    "classic": _classic_network,
    "recipe": _recipe_network,
}


def network_kind(metadata: Mapping[str, Any]) -> str:
    """Which network a model file holds: the recipe's (it has a `recipe` entry) or the MLP."""
    return "recipe" if "recipe" in metadata else "classic"


def recipe_layer_kinds(metadata: Mapping[str, Any]) -> list[str]:
    """The layer kinds of a recipe model's network, from its metadata alone (no arrays)."""
    from mlpcli.nn.recipe import unallocated_from_metadata

    return [layer.kind for layer in unallocated_from_metadata(dict(metadata)).layers]


def _labels(g: _Graph, values: list[str], index: str) -> str:
    return g.op("Gather", g.const(np.array(values, dtype=object)), index)


def _decoded(g: _Graph, model: TrainedModel, P: str, output: str | None = None) -> str:
    """Standardised regression outputs (..., t) -> float64 values in the targets' units."""
    state = model.encoder.to_state()[1]
    values = g.op("Mul", g.op("Cast", P, to=11), g.const(state["target.std"][None, :]))
    return g.op("Add", values, g.const(state["target.mean"][None, :]), output=output)


def _regression(g: _Graph, model: TrainedModel, P: str, outputs: list[Any]) -> None:
    _decoded(g, model, P, output="prediction")
    shape = ["N", len(model.encoder.targets)]
    outputs.append(g.helper.make_tensor_value_info("prediction", 11, shape))


def _binary(g: _Graph, model: TrainedModel, P: str, outputs: list[Any]) -> None:
    dtype = model.net.dtype
    g.op("Concat", g.op("Sub", g.const(1.0, dtype), P), P, axis=1, output="probabilities")
    p = g.op("Squeeze", P, g.const(np.array([1], dtype=np.int64)))
    index = g.op("Cast", g.op("GreaterOrEqual", p, g.const(model.threshold, dtype)), to=7)
    g.op("Identity", _labels(g, model.encoder.labels, index), output="label")
    _classification_outputs(g, model, outputs, ["N"])


def _multiclass(g: _Graph, model: TrainedModel, P: str, outputs: list[Any]) -> None:
    g.op("Identity", P, output="probabilities")
    index = g.op("ArgMax", P, axis=1, keepdims=0)  # the first of equal maxima, as NumPy's
    g.op("Identity", _labels(g, model.encoder.labels, index), output="label")
    _classification_outputs(g, model, outputs, ["N"])


def _multilabel(g: _Graph, model: TrainedModel, P: str, outputs: list[Any]) -> None:
    # Target j's two values (as the table spells them) sit at 2j and 2j + 1 of one list.
    n = len(model.encoder.labels)
    g.op("Identity", P, output="probabilities")
    on = g.op("Cast", g.op("GreaterOrEqual", P, g.const(model.threshold, model.net.dtype)), to=7)
    offsets = g.const(2 * np.arange(n, dtype=np.int64)[None, :])
    flat = [v for pair in model.encoder.to_state()[0]["values"] for v in pair]
    g.op("Identity", _labels(g, flat, g.op("Add", on, offsets)), output="label")
    _classification_outputs(g, model, outputs, ["N", n])


def _classification_outputs(
    g: _Graph, model: TrainedModel, outputs: list[Any], label_shape: list[Any]
) -> None:
    proba_type = g.helper.np_dtype_to_tensor_dtype(model.net.dtype)
    n = len(model.encoder.labels)
    outputs.append(g.helper.make_tensor_value_info("label", 8, label_shape))
    outputs.append(g.helper.make_tensor_value_info("probabilities", proba_type, ["N", n]))


#: Task name -> builder of the outputs from the network's output P: `label` + `probabilities`,
#: or `prediction` in the targets' units.
OUTPUTS: dict[str, Callable[[_Graph, Any, str, list[Any]], None]] = {
    "binary": _binary,
    "multiclass": _multiclass,
    "multilabel": _multilabel,
    "regression": _regression,
}

#: Task name -> the columns whose spread over members `predict --spread` reports, from the
#: (K, N, outputs) member outputs: each label's probability, or each value in targets' units.
MEMBER_COLUMNS: dict[str, Callable[[_Graph, Any, str], str]] = {
    "binary": lambda g, model, M: g.op(
        "Concat", g.op("Sub", g.const(1.0, model.net.dtype), M), M, axis=2
    ),
    "multiclass": lambda g, model, M: M,
    "multilabel": lambda g, model, M: M,
    "regression": _decoded,
}


def _spread(g: _Graph, model: TrainedModel, members: str, outputs: list[Any]) -> None:
    """`spread`: the members' standard deviation of each column, as `predict --spread`."""
    columns = MEMBER_COLUMNS[model.task](g, model, members)
    axis = g.const(np.array([0]))
    deviation = g.op("Sub", columns, g.op("ReduceMean", columns, axis, keepdims=1))
    variance = g.op("ReduceMean", g.op("Mul", deviation, deviation), axis, keepdims=0)
    g.op("Sqrt", variance, output="spread")
    # probabilities in the network's dtype, one per label; or float64 values, one per target
    classification = tasks.get(model.task).classification
    n = len(model.encoder.labels if classification else model.encoder.targets)
    dtype = np.dtype(model.net.dtype if classification else np.float64)
    spread_type = g.helper.np_dtype_to_tensor_dtype(dtype)
    outputs.append(g.helper.make_tensor_value_info("spread", spread_type, ["N", n]))


def onnx_model(model: TrainedModel) -> Any:
    """The ONNX ModelProto of a loaded model (checked with `onnx.checker`)."""
    import onnx

    g = _Graph()
    inputs: list[Any] = []
    outputs: list[Any] = []
    x = _preprocessing(g, model, inputs)
    P, members = NETWORKS[network_kind(model.metadata)](g, model, x)
    OUTPUTS[model.task](g, model, P, outputs)
    if members is not None:
        _spread(g, model, members, outputs)
    graph = g.helper.make_graph(g.nodes, "mlpcli", inputs, outputs, g.constants)
    proto = g.helper.make_model(
        graph,
        opset_imports=[g.helper.make_opsetid("", OPSET)],
        producer_name="mlpcli",
        producer_version=__version__,
    )
    proto.ir_version = min(proto.ir_version, 10)  # what current runtimes read
    onnx.helper.set_model_props(proto, _properties(model))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _properties(model: TrainedModel) -> dict[str, str]:
    """The metadata a server needs to feed the graph: input columns, labels, conventions."""
    state, _ = model.preprocessor.to_state()
    numeric = [c["name"] for c in state["columns"] if c["kind"] == "numeric"]
    categorical = {c["name"]: c["levels"] for c in state["columns"] if c["kind"] in LEVEL_KINDS}
    return {
        "mlpcli_version": __version__,
        "task": model.task,
        "targets": json.dumps(model.encoder.targets),
        "labels": json.dumps(model.encoder.labels),
        "numeric_columns": json.dumps(numeric),
        "categorical_columns": json.dumps(categorical),
        "input_encoding": (
            f"'{NUMERIC_INPUT}': float32 (N, {len(numeric)}) of the raw numeric columns in the "
            "order of numeric_columns, NaN for missing; one string (N, 1) input per categorical "
            "column, the level as mlpcli spells it, '' for missing"
        ),
        "threshold": str(model.threshold),
        "temperature": str(model.temperature or 1.0),
    }


# --------------------------------------------------------------------------- formats
class ExportFormat:
    """One export format: what it needs and how it writes a model."""

    name: ClassVar[str]
    extra: ClassVar[str]
    module: ClassVar[str]

    def unsupported(self, metadata: Mapping[str, Any]) -> str | None:
        """Why a model (by its metadata) cannot be exported, or None."""
        raise NotImplementedError

    def write(self, model: TrainedModel, out: str | Path) -> int:
        """Write (staged with the command's other outputs); returns the size in bytes."""
        raise NotImplementedError


class Onnx(ExportFormat):
    name = "onnx"
    extra = "onnx"
    module = "onnx"

    def unsupported(self, metadata: Mapping[str, Any]) -> str | None:
        if network_kind(metadata) == "recipe":
            kinds = sorted(set(recipe_layer_kinds(metadata)) - set(RECIPE_LAYERS))
            if kinds:
                return f"recipe layer(s) {', '.join(kinds)} have no ONNX form here"
        arch = metadata.get("architecture", {})
        names = [*arch.get("activation", []), arch.get("output_activation")]
        missing = sorted({str(n) for n in names if n not in ACTIVATIONS})
        if missing:
            return f"activation(s) {', '.join(missing)} have no ONNX form here"
        options = metadata.get("preprocessing", {}).get("options", {})
        clip = options.get("clip", "none")
        if clip not in CLIPS:
            return f"clipping '{clip}' has no ONNX form here"
        return None

    def write(self, model: TrainedModel, out: str | Path) -> int:
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UsageError(
                f"--format onnx needs the onnx package, which is not installed: "
                f"{install_hint('onnx')}."
            ) from None
        payload = onnx_model(model).SerializeToString()
        with atomic_path(out, "--out") as tmp:
            tmp.write_bytes(payload)
        return len(payload)


FORMATS: dict[str, type[ExportFormat]] = {"onnx": Onnx}


def support(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Each export format -> "yes", or why not (for `inspect`; imports no exporter)."""
    import importlib.util

    found: dict[str, str] = {}
    for name, fmt in FORMATS.items():
        reason = fmt().unsupported(metadata)
        if reason is None and importlib.util.find_spec(fmt.module) is None:
            reason = f"needs the {fmt.extra} extra"
        found[name] = "yes" if reason is None else f"no: {reason}"
    return found


def onnx_inputs(model: TrainedModel, frame: Any) -> dict[str, np.ndarray]:
    """The graph's inputs for the rows of a raw table (columns by name): what a server feeds."""
    import pandas as pd

    from mlpcli.cells import level_string

    state, _ = model.preprocessor.to_state()
    numeric = [c["name"] for c in state["columns"] if c["kind"] == "numeric"]
    feeds: dict[str, np.ndarray] = {}
    if numeric:
        feeds[NUMERIC_INPUT] = np.column_stack(
            [pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float32) for c in numeric]
        )
    for c in state["columns"]:
        if c["kind"] in LEVEL_KINDS:
            cells = frame[c["name"]].to_numpy(dtype=object)
            levels = [MISSING_STRING if pd.isna(v) else level_string(v) for v in cells]
            feeds[c["name"]] = np.array(levels, dtype=object).reshape(-1, 1)
    return feeds


@dataclass
class ExportSummary:
    model: str
    out: str
    format: str
    n_inputs: int
    n_bytes: int


def export_file(path: str | Path, format: str, out: str | Path) -> ExportSummary:
    """Write the model file at `path` in `format` to `out`, atomically."""
    from mlpcli import trained

    exporter: ExportFormat = choose("export format", format, FORMATS)()
    model = trained.load_trained(path)
    reason = exporter.unsupported(model.metadata)
    if reason is not None:
        raise UsageError(f"'{path}' cannot be exported as {format}: {reason}.")
    n_bytes = exporter.write(model, out)
    return ExportSummary(
        model=str(path),
        out=str(out),
        format=format,
        n_inputs=len(model.preprocessor.input_columns),
        n_bytes=n_bytes,
    )
