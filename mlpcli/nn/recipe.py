"""The quality recipe: a RealMLP-TD-style network in NumPy, optionally a batched ensemble.

Design (issue 14). RealMLP-TD (Holzmüller, Grinsztajn & Steinwart 2024, "Better by Default:
Strong Pre-Tuned MLPs and Boosted Trees on Tabular Data"; defaults read from pytabkit 1.7's
`DefaultParams.RealMLP_TD_CLASS/REG` and `nn_models/`) stacks small, separately useful pieces.
Each is a registry entry here or beside it, with the default RealMLP-TD uses:

| piece | module: entry | default (classification / regression) |
| --- | --- | --- |
| robust scaling, then smooth clip x/sqrt(1+(x/3)^2) | preprocessing: robust_range, smooth | on |
| periodic numeric embedding PBLD, raw x kept | batched: pbld | F 16, sigma 0.1, width 3+1 |
| piecewise-linear encoding on quantile bins | batched: ple | off (16 bins) |
| learnable per-feature scale in front | batched: scale | on, lr factor 6 |
| NTK parametrisation, data-dependent init | batched: dense | init std, bias he+5 |
| parametric activation x + alpha (f(x) - x) | batched: act | SELU / Mish |
| dropout, flat-then-cosine | batched: dropout; schedules: flat_cos | 0.15 |
| decoupled weight decay, flat-then-cosine, not on biases | optimizers: adamw | 0.02 |
| label smoothing | losses: ce, bce | 0.1 / none |
| Adam, beta2 0.95, lr on coslog4 per step | optimizers: adam; schedules: coslog4 | 0.04 / 0.2 |
| 3 x 256 hidden, batch 256, 256 epochs, best epoch on val error | here; training | |
| K members, one matmul per layer (TabM packed) | batched; n_members | K = 1 |
| or a shared W with rank-1 adapters (BatchEnsemble) | batched: be_dense; ensemble | packed |

Parameter groups: the learning rate of each parameter is lr times its group's factor
(pytabkit's `hyper_factors`): scale 6, biases 0.1, activation mix 0.1, PBLD 0.1, weights 1.
Weight decay, scaled by the same factors, applies to every parameter but the dense biases.

TabM (Gorishniy, Kotelnikov & Babenko 2024, "TabM: Advancing Tabular Deep Learning with
Parameter-Efficient Ensembling") shows that K MLPs trained at once on the same batches and
averaged in probability beat one MLP; its fully independent variant (`LinearEnsemble`) is what
`n_members` does: every weight has a member axis, and each layer is one batched np.matmul.
Each member's gradient equals the gradient it would get alone (the loss is the sum over members
of each member's mean loss), so with K = 1 this is the plain network.

Not yet here (next steps of issue 14): one-hot/embedding of categoricals by level count
(pytabkit: one-hot up to 9 levels, else an 8-wide embedding), output clamping for regression,
wiring into `train` as `--preset`, calibration, and the small-data baselines.

About 630 lines on purpose: the recipe network, its configuration and presets, and the two
functions that rebuild it from a model file; they change together whenever the recipe does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlpcli.errors import UsageError, choose
from mlpcli.nn import activations, losses
from mlpcli.nn.batched import (
    BatchEnsembleDense,
    CategoricalEmbedding,
    FeatureScale,
    MemberDense,
    MemberDropout,
    MemberLayer,
    ParametricActivation,
    PeriodicEmbedding,
    PiecewiseLinearEncoding,
)
from mlpcli.nn.network import Architecture

Array = NDArray[np.floating]


@dataclass(frozen=True)
class PBLDConfig:
    """Periodic embedding: F frequencies, their scale sigma, width per column (raw x included)."""

    n_frequencies: int = 16
    sigma: float = 0.1
    d_embedding: int = 4
    lr_factor: float = 0.1


@dataclass(frozen=True)
class PLEConfig:
    """Piecewise-linear encoding: quantile bins per numeric column."""

    n_bins: int = 16


@dataclass(frozen=True)
class RecipeConfig:
    """Every setting of the recipe; the defaults are RealMLP-TD's for classification."""

    hidden_layer_sizes: tuple[int, ...] = (256, 256, 256)
    activation: str = "selu"
    parametric_activation: bool = True
    act_lr_factor: float = 0.1
    embedding: str = "pbld"  # a key of EMBEDDINGS
    pbld: PBLDConfig = field(default_factory=PBLDConfig)
    ple: PLEConfig = field(default_factory=PLEConfig)
    front_scale: bool = True
    scale_lr_factor: float = 6.0
    weight_param: str = "ntk"
    weight_init: str = "std"
    bias_init: str = "he+5"
    bias_lr_factor: float = 0.1
    dropout: float = 0.15
    dropout_schedule: str = "flat_cos"
    weight_decay: float = 0.02
    weight_decay_schedule: str = "flat_cos"
    label_smoothing: float = 0.1
    lr: float = 0.04
    lr_schedule: str = "coslog4"
    beta2: float = 0.95
    epochs: int = 256
    batch_size: int = 256
    n_members: int = 1
    #: Bagging: member k gets weight 0 on its own fold (`presets.training_weights`).
    bag: bool = False
    #: How members' hidden layers hold weights: "packed" (each its own, `dense`) or "batch"
    #: (one shared matrix with per-member adapters, `be_dense`, TabM's default).
    ensemble: str = "packed"
    #: Which rows each member trains on per step (a key of MEMBER_BATCHES): "shared", every
    #: member the whole batch (TabM); "disjoint", each member its own batch_size rows of a
    #: K x batch_size batch; "split", each its own batch_size / K rows of the batch. Both of
    #: the latter cost about one member's FLOPs per epoch. "auto" (the default), made concrete
    #: from the training rows by `resolve_member_batches` before the network is built:
    #: "split" where they fill K batches at least, else "shared" (on a small table a member's
    #: share of each batch would be too few rows); a net built on "auto" itself shares.
    #: "sample": each member its own random `member_share` of the batch's rows, drawn anew
    #: every step (bagging-like; about K x member_share of one member's FLOPs).
    member_batches: str = "auto"
    member_share: float = 0.5
    #: Rows of training data the data-dependent initialisation looks at (a random sample).
    init_rows: int = 4096
    #: Categorical columns of more levels than this get a learned embedding of
    #: `cat_embedding` dimensions (0: one-hot for all), as RealMLP-TD (9 and 8).
    max_one_hot: int = 9
    cat_embedding: int = 8
    #: Clip regression outputs to the training targets' range at inference (RealMLP-TD).
    clamp_output: bool = False

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["hidden_layer_sizes"] = list(self.hidden_layer_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecipeConfig:
        d = dict(d)
        d["hidden_layer_sizes"] = tuple(d["hidden_layer_sizes"])
        d["pbld"] = PBLDConfig(**d["pbld"])
        d["ple"] = PLEConfig(**d["ple"])
        return cls(**d)


def _realmlp_td(task: str) -> RecipeConfig:
    """RealMLP-TD's defaults; regression swaps in Mish, lr 0.2 and no label smoothing."""
    if task == "regression":
        return RecipeConfig(activation="mish", lr=0.2, label_smoothing=0.0, clamp_output=True)
    return RecipeConfig()


#: preset name -> f(task kind: "classification" | "regression") -> its configuration.
PRESETS: dict[str, Callable[[str], RecipeConfig]] = {"realmlp_td": _realmlp_td}


def preset(name: str, task: str, **overrides: Any) -> RecipeConfig:
    """The configuration of preset `name` for `task`, with fields overridden by keyword."""
    make = choose("preset", name, PRESETS)
    return replace(make(task), **overrides)


# --- embeddings registry: name -> builder(K, n_in, numeric columns, config) -> layer or None ---


def _no_embedding(
    n_members: int, n_in: int, numeric: Sequence[int] | None, config: RecipeConfig
) -> MemberLayer | None:
    return None


def _pbld(
    n_members: int, n_in: int, numeric: Sequence[int] | None, config: RecipeConfig
) -> MemberLayer | None:
    c = config.pbld
    return PeriodicEmbedding(
        n_members, n_in, numeric, c.n_frequencies, c.sigma, c.d_embedding, c.lr_factor
    )


def _ple(
    n_members: int, n_in: int, numeric: Sequence[int] | None, config: RecipeConfig
) -> MemberLayer | None:
    return PiecewiseLinearEncoding(n_members, n_in, numeric, config.ple.n_bins)


#: member_batches -> the trainer's batch size for K members of batch size B.
MEMBER_BATCHES: dict[str, Callable[[int, int], int]] = {
    "auto": lambda batch_size, n_members: batch_size,
    "shared": lambda batch_size, n_members: batch_size,
    "disjoint": lambda batch_size, n_members: batch_size * n_members,
    "split": lambda batch_size, n_members: batch_size,
    "sample": lambda batch_size, n_members: batch_size,
}


def resolve_member_batches(config: RecipeConfig, n_rows: int) -> RecipeConfig:
    """`member_batches="auto"` made concrete for `n_rows` training rows: "split" where they
    fill K batches (each member then sees batch_size / K rows per step), else "shared"."""
    if config.member_batches != "auto":
        return config
    large = config.n_members > 1 and n_rows >= config.n_members * config.batch_size
    return replace(config, member_batches="split" if large else "shared")


#: ensemble kind -> the dense layer of the hidden blocks (the output layer is always `dense`).
ENSEMBLE_KINDS: dict[str, type[MemberDense]] = {"packed": MemberDense, "batch": BatchEnsembleDense}

EMBEDDINGS: dict[
    str, Callable[[int, int, Sequence[int] | None, RecipeConfig], MemberLayer | None]
] = {"none": _no_embedding, "pbld": _pbld, "ple": _ple}


class RecipeNet:
    """K member networks of one architecture, trained as one: embedding -> scale -> hidden
    blocks (dense, parametric activation, dropout) -> dense output.

    Parameters live in one flat buffer with per-parameter views (as in `MLP`), so one optimizer
    step updates every member; `flat_lr_factors()` and `flat_decay_mask()` give the parameter
    groups over that buffer. Inputs are (n, n_inputs); member outputs are (K, n, n_outputs) and
    `predict` averages them (probabilities, for classification).
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        loss: str,
        config: RecipeConfig | None = None,
        numeric: Sequence[int] | None = None,
        dtype: str = "float32",
        seed: int | np.random.Generator | None = None,
        allocate: bool = True,
        categorical: Sequence[tuple[int, int]] = (),
    ) -> None:
        self.config = config = config or RecipeConfig()
        if config.n_members < 1:
            raise UsageError(f"--ensemble must be at least 1; got {config.n_members}.")
        self.n_inputs, self.n_outputs = int(n_inputs), int(n_outputs)
        self.dtype = np.dtype(dtype)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        smoothing = config.label_smoothing if loss in ("bce", "ce") else 0.0
        self.loss_name = loss
        self.loss_fn = losses.get(loss, label_smoothing=smoothing)
        self.output_activation = activations.get(self.loss_fn.output_activation)
        self.numeric = None if numeric is None else [int(i) for i in numeric]
        choose("member batches", config.member_batches, MEMBER_BATCHES)
        self._disjoint = config.member_batches in ("disjoint", "split") and config.n_members > 1
        self._sampled = config.member_batches == "sample" and config.n_members > 1
        if not 0.0 < config.member_share <= 1.0:
            raise UsageError(f"member share must be in (0, 1]; got {config.member_share}.")
        #: Every categorical column's one-hot block [start, stop) among the inputs; those with
        #: more than `config.max_one_hot` levels are embedded.
        self.categorical = [(int(a), int(b)) for a, b in categorical]
        #: Regression outputs are clipped to the training targets' range at inference
        #: (`set_output_range`; RealMLP-TD's clamp_output).
        self.output_low = np.full(self.n_outputs, -1e30, dtype=self.dtype)
        self.output_high = np.full(self.n_outputs, 1e30, dtype=self.dtype)
        self.layers = self._build_layers()
        self.dropouts = [layer for layer in self.layers if isinstance(layer, MemberDropout)]
        if allocate:
            self._allocate()
        self.initialised = False

    @classmethod
    def unallocated(
        cls,
        n_inputs: int,
        n_outputs: int,
        loss: str,
        config: RecipeConfig,
        numeric: Sequence[int] | None = None,
        categorical: Sequence[tuple[int, int]] = (),
    ) -> RecipeNet:
        """The layers without their parameter buffers: enough for `state_shapes()`."""
        return cls(
            n_inputs, n_outputs, loss, config, numeric, seed=0, allocate=False,
            categorical=categorical,
        )  # fmt: skip

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """The name and shape of every array `state_arrays()` gives, without allocating: a
        model file's arrays are checked against it before they are read."""
        shapes: dict[str, tuple[int, ...]] = {}
        for i, layer in enumerate(self.layers):
            for spec in layer.specs():
                shapes[f"{i}.{layer.kind}.{spec.name}"] = tuple(spec.shape)
            if isinstance(layer, PiecewiseLinearEncoding):
                shapes[f"{i}.ple.edges"] = layer.edges.shape
                shapes[f"{i}.ple.n_edges"] = layer.n_edges.shape
        if self.config.clamp_output:
            shapes["output.low"] = shapes["output.high"] = (self.n_outputs,)
        return shapes

    def _build_layers(self) -> list[MemberLayer]:
        c, K = self.config, self.config.n_members
        layers: list[MemberLayer] = []
        embed = choose("numeric embedding", c.embedding, EMBEDDINGS)
        first = embed(K, self.n_inputs, self.numeric, c)
        if first is not None:
            layers.append(first)
        width = layers[-1].n_out if layers else self.n_inputs
        # The numeric embedding puts its columns first and passes the inputs on after them.
        shift = width - self.n_inputs
        wide = [(a + shift, b + shift) for a, b in self.categorical if b - a > c.max_one_hot]
        if c.cat_embedding > 0 and wide:
            layers.append(
                CategoricalEmbedding(K, width, wide, c.cat_embedding, input_grad=bool(layers))
            )
            width = layers[-1].n_out
        if c.front_scale:
            layers.append(FeatureScale(K, width, c.scale_lr_factor))
        dense: dict[str, Any] = dict(
            param=c.weight_param,
            weight_init=c.weight_init,
            bias_init=c.bias_init,
            bias_lr_factor=c.bias_lr_factor,
        )
        hidden_dense = choose("ensemble kind", c.ensemble, ENSEMBLE_KINDS)
        for size in c.hidden_layer_sizes:
            # The first dense layer's dX is needed only behind a trainable front.
            layers.append(hidden_dense(K, width, size, input_grad=bool(layers), **dense))
            act = activations.get(c.activation)
            layers.append(
                ParametricActivation(
                    K, size, act, c.act_lr_factor if c.parametric_activation else 0.0
                )
            )
            if c.dropout > 0:
                layers.append(MemberDropout(K, size, c.dropout))
            width = size
        layers.append(MemberDense(K, width, self.n_outputs, input_grad=bool(layers), **dense))
        return layers

    def _allocate(self) -> None:
        specs = [(layer, layer.specs()) for layer in self.layers]
        total = sum(int(np.prod(s.shape)) for _, layer_specs in specs for s in layer_specs)
        self.flat_params = np.zeros(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self.param_names: list[str] = []
        self.layer_slices: list[slice] = []
        slices: dict[int, slice] = {}
        self._lr_factors = np.ones(total, dtype=self.dtype)
        self._decay = np.zeros(total, dtype=self.dtype)
        offset = 0
        for i, (layer, layer_specs) in enumerate(specs):
            start = offset
            params, grads = [], []
            for spec in layer_specs:
                size = int(np.prod(spec.shape))
                params.append(self.flat_params[offset : offset + size].reshape(spec.shape))
                grads.append(self.flat_grads[offset : offset + size].reshape(spec.shape))
                self.param_names.append(f"{i}.{layer.kind}.{spec.name}")
                self._lr_factors[offset : offset + size] = spec.lr_factor
                self._decay[offset : offset + size] = float(spec.decay)
                offset += size
            layer.bind(params, grads)
            if offset > start:
                slices[i] = slice(start, offset)
        # Slices and names by block, as the plain MLP has them (layer1 .. layerH, output): the
        # embedding and front scale join the first block, each dense layer starts a block.
        blocks: list[list[int]] = [[]]
        seen_dense = False
        for i, layer in enumerate(self.layers):
            if isinstance(layer, MemberDense):
                if seen_dense:
                    blocks.append([])
                seen_dense = True
            blocks[-1].append(i)
        self.layer_slices = []
        for block in blocks:
            own = [slices[i] for i in block if i in slices]
            self.layer_slices.append(slice(own[0].start, own[-1].stop))
        self.layer_names = [f"layer{b + 1}" for b in range(len(blocks) - 1)] + ["output"]
        if not self.config.parametric_activation:
            # A fixed mix (alpha = 1, lr factor 0, no decay): plain f.
            for i, layer in enumerate(self.layers):
                if isinstance(layer, ParametricActivation):
                    self._decay[slices[i]] = 0.0

    @property
    def architecture(self) -> Architecture:
        """The plain-MLP description of this network (sizes, activations, loss), which
        `inspect`, `report` and the model file's checks read; the recipe itself is `config`."""
        c = self.config
        return Architecture(
            n_inputs=self.n_inputs,
            hidden_layer_sizes=tuple(c.hidden_layer_sizes),
            n_outputs=self.n_outputs,
            activation=(c.activation,) * len(c.hidden_layer_sizes),
            output_activation=self.output_activation.name,
            loss=self.loss_name,
            dtype=self.dtype.name,
            dropout=c.dropout,
            weight_decay=c.weight_decay,
        )

    def n_parameters(self) -> list[int]:
        """Trainable parameters per block (layer1 .. output), all members together."""
        return [s.stop - s.start for s in self.layer_slices]

    def forward(self, X: np.ndarray, training: bool = False, batch_size: int = 65536) -> Array:
        """The members' mean output, in inference mode (as `MLP.forward` is called)."""
        mean: Array = self.member_outputs(X, batch_size).mean(axis=0)
        return mean

    # ----------------------------------------------------------------- groups and state
    def flat_lr_factors(self) -> Array:
        """Each weight's learning-rate factor over the flat buffer (the parameter groups)."""
        return self._lr_factors.copy()

    def flat_decay_mask(self) -> Array:
        """1 where weight decay applies (all but dense biases), over the flat buffer."""
        return self._decay.copy()

    def set_dropout(self, p: float) -> None:
        """Set every dropout layer's rate (a dropout schedule calls this before each step)."""
        for layer in self.dropouts:
            layer.p = p

    def batchnorm_layers(self) -> list[Any]:
        return []  # no batch normalisation: the trainer has no running statistics to keep

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Parameters (member axis first) and the fitted PLE edges, by name."""
        state: dict[str, np.ndarray] = {
            n: p.copy() for n, p in zip(self.param_names, self.parameters(), strict=True)
        }
        for i, layer in enumerate(self.layers):
            if isinstance(layer, PiecewiseLinearEncoding):
                state[f"{i}.ple.edges"] = layer.edges.copy()
                state[f"{i}.ple.n_edges"] = layer.n_edges.copy()
        if self.config.clamp_output:
            state["output.low"], state["output.high"] = (
                self.output_low.copy(),
                self.output_high.copy(),
            )
        return state

    def load_state_arrays(self, state: dict[str, np.ndarray]) -> None:
        targets: dict[str, np.ndarray] = dict(zip(self.param_names, self.parameters(), strict=True))
        for i, layer in enumerate(self.layers):
            if isinstance(layer, PiecewiseLinearEncoding):
                targets[f"{i}.ple.edges"] = layer.edges
                targets[f"{i}.ple.n_edges"] = layer.n_edges
        if self.config.clamp_output:
            targets["output.low"], targets["output.high"] = self.output_low, self.output_high
        if set(targets) != set(state):
            raise ValueError(
                f"arrays do not match the recipe: missing {sorted(set(targets) - set(state))}, "
                f"extra {sorted(set(state) - set(targets))}"
            )
        for name, target in targets.items():
            if np.shape(state[name]) != target.shape:
                raise ValueError(
                    f"array '{name}' has shape {np.shape(state[name])}, expected {target.shape}"
                )
        for name, target in targets.items():
            target[...] = state[name]
        self.initialised = True

    def parameters(self) -> list[Array]:
        return [p for layer in self.layers for p in layer.params]

    def gradients(self) -> list[Array]:
        return [g for layer in self.layers for g in layer.grads]

    # ----------------------------------------------------------------- computation
    def _members(self, X: np.ndarray) -> Array:
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"expected X of shape (n, {self.n_inputs}), got {X.shape}")
        return np.broadcast_to(X, (self.config.n_members, *X.shape))

    def initialise(self, X: np.ndarray) -> None:
        """Data-dependent initialisation from (a sample of) the training rows, layer by layer."""
        X = np.asarray(X)
        rows = self.config.init_rows
        if len(X) > rows:
            X = X[np.sort(self.rng.choice(len(X), size=rows, replace=False))]
        out = self._members(X)
        for layer in self.layers:
            layer.initialise(self.rng, out)
            out = layer.forward(out, False, None)
        self.initialised = True

    def _logits(self, X: Array, training: bool, rng: np.random.Generator | None) -> Array:
        return self._forward(self._members(X), training, rng)

    def _forward(self, out: Array, training: bool, rng: np.random.Generator | None) -> Array:
        """(K, n, n_inputs) member inputs -> (K, n, n_outputs) logits."""
        if not self.initialised:
            raise RuntimeError("initialise(X_train) the recipe network before using it")
        for layer in self.layers:
            out = layer.forward(out, training, rng)
        return out

    def trainer_batch_size(self) -> int:
        """Rows per optimizer step: batch_size, or K x batch_size with disjoint member batches."""
        c = self.config
        return MEMBER_BATCHES[c.member_batches](c.batch_size, c.n_members)

    def set_output_range(self, Y: np.ndarray) -> None:
        """The training targets' range per output, to which `clamp_output` clips predictions."""
        Y = np.asarray(Y)
        self.output_low[...] = Y.min(axis=0)
        self.output_high[...] = Y.max(axis=0)

    def member_outputs(self, X: np.ndarray, batch_size: int = 65536) -> Array:
        """(K, n, n_outputs) outputs after the output activation, in inference mode."""
        X = np.asarray(X, dtype=self.dtype)
        parts = []
        for start in range(0, max(len(X), 1), batch_size):
            Z = self._logits(X[start : start + batch_size], False, None)
            K, n, k = Z.shape
            parts.append(self.output_activation.forward(Z.reshape(K * n, k)).reshape(K, n, k))
        out = np.concatenate(parts, axis=1)
        if self.config.clamp_output:
            np.clip(out, self.output_low, self.output_high, out=out)
        return out

    def predict(self, X: np.ndarray) -> Array:
        """The members' mean output (mean probabilities for classification)."""
        mean: Array = self.member_outputs(X).mean(axis=0)
        return mean

    def evaluate(self, X: np.ndarray, Y: np.ndarray) -> tuple[float, Array]:
        """Inference loss of the ensemble's mean output, and that output (n, n_outputs)."""
        P = self.predict(X)
        return self.loss_fn.value(np.asarray(Y, dtype=self.dtype), P), P

    def _backprop(
        self,
        X: Array,
        Y: Array,
        sample_weight: np.ndarray | None,
        training: bool,
        rng: np.random.Generator | None,
    ) -> float:
        """Forward and backward over one batch for every member; fills `flat_grads`.

        Returns the members' mean loss. Each member's gradient is that of its own mean loss,
        as if it were trained alone (dZ is scaled by K after the loss's 1 / (K n)).
        """
        K = self.config.n_members
        if self._disjoint and len(X) >= K:
            # Member k trains on rows [k m, (k + 1) m) of the (shuffled) batch; the n mod K
            # rows left over sit this step out.
            m = len(X) // K
            Z = self._forward(np.asarray(X[: K * m]).reshape(K, m, -1), training, rng)
            _, n, k = Z.shape
            Y_all = np.asarray(Y[: K * m], dtype=self.dtype)
            w = None if sample_weight is None else np.asarray(sample_weight)[: K * m]
            if w is not None and w.ndim == 2:  # --bag: member k's own column on its rows
                w = w.reshape(K, m, K)[np.arange(K), :, np.arange(K)].reshape(-1)
        elif self._sampled:
            rows = self._sampled_rows(len(X), rng or self.rng)
            Z = self._forward(np.asarray(X)[rows], training, rng)
            _, n, k = Z.shape
            Y_all = np.asarray(Y, dtype=self.dtype)[rows].reshape(K * n, k)
            w = None if sample_weight is None else np.asarray(sample_weight)[rows]
            if w is not None and w.ndim == 3:  # --bag: member k's own column on its rows
                w = w[np.arange(K), :, np.arange(K)]
            w = None if w is None else w.reshape(-1)
        else:
            Z = self._logits(X, training, rng)
            _, n, k = Z.shape
            Y_all = np.broadcast_to(np.asarray(Y, dtype=self.dtype), (K, n, k)).reshape(K * n, k)
            w = (
                None
                if sample_weight is None
                else self._member_weights(np.asarray(sample_weight), K)
            )
        loss, dZ = self.loss_fn(Y_all, Z.reshape(K * n, k), self.output_activation, w)
        grad: Array = dZ.reshape(K, n, k) * K
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return loss

    def _sampled_rows(self, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        """(K, m) row indices: member k's own random m = ceil(share x n) rows of an n-row
        batch, without replacement, in batch order (so m = n is the whole batch)."""
        K = self.config.n_members
        m = max(1, math.ceil(self.config.member_share * n))
        if m >= n:
            return np.broadcast_to(np.arange(n), (K, n))
        rows: NDArray[np.intp] = np.sort(rng.random((K, n)).argsort(axis=1)[:, :m], axis=1)
        return rows

    @staticmethod
    def _member_weights(w: np.ndarray, K: int) -> np.ndarray:
        """(K n,) weights, member-major: (n,) weights shared by all members, or (n, K) per member
        (bagging), rescaled so each member's gradient is that of its own weighted mean loss
        (the loss divides by the total over members; member k's share T_k becomes T / K)."""
        if w.ndim == 1:
            return np.tile(w, K)
        W = w.T.astype(np.float64)  # (K, n)
        totals = W.sum(axis=1, keepdims=True)
        scale = np.divide(W.sum() / K, totals, out=np.zeros_like(totals), where=totals > 0)
        per_row: NDArray[Any] = (W * scale).reshape(-1).astype(w.dtype)
        return per_row

    def loss_and_gradients(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        training: bool = True,
        rng: np.random.Generator | None = None,
    ) -> tuple[float, Array]:
        """Mean member loss and the flat gradient buffer (overwritten by the next call)."""
        loss = self._backprop(
            np.asarray(X, dtype=self.dtype), np.asarray(Y), None, training, rng or self.rng
        )
        return loss, self.flat_grads


# --------------------------------------------------------------------------- model file
def _metadata_config(recipe: dict[str, Any]) -> RecipeConfig:
    config = RecipeConfig.from_dict(recipe["config"])
    # A hostile file could ask for huge embeddings; no real model comes near these.
    if config.ple.n_bins > 4096 or config.pbld.n_frequencies > 4096 or config.n_members > 64:
        raise ValueError("the recipe's sizes are out of range")
    return config


def _metadata_blocks(recipe: dict[str, Any]) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in recipe.get("categorical", [])]


def unallocated_from_metadata(meta: dict[str, Any]) -> RecipeNet:
    """The recipe network of a model file's metadata, without parameter buffers: its layers
    and `state_shapes()`, before any array is read."""
    arch, recipe = meta["architecture"], meta["recipe"]
    return RecipeNet.unallocated(
        arch["n_inputs"],
        arch["n_outputs"],
        recipe["loss"],
        _metadata_config(recipe),
        recipe["numeric"],
        _metadata_blocks(recipe),
    )


def shapes_from_metadata(meta: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every `net.` array of a recipe model file and its shape, from the metadata alone (the
    model file checks each array header against these before reading any data)."""
    return unallocated_from_metadata(meta).state_shapes()


def net_from_metadata(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> RecipeNet:
    """The recipe network of a model file (`ValueError`/`KeyError` when inconsistent)."""
    arch, recipe = meta["architecture"], meta["recipe"]
    net = RecipeNet(
        arch["n_inputs"],
        arch["n_outputs"],
        recipe["loss"],
        _metadata_config(recipe),
        recipe["numeric"],
        arch.get("dtype", "float32"),
        seed=0,
        categorical=_metadata_blocks(recipe),
    )
    net.load_state_arrays({k[4:]: v for k, v in arrays.items() if k.startswith("net.")})
    return net
