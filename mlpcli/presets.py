"""What `--preset realmlp_td` trains: settings -> `RecipeConfig`, its trainer, its model file.

`config.PRESETS` holds the option values a preset stands for; this module turns resolved
settings into the recipe network (`nn.recipe.RecipeNet`) and its model-file entry, which
`nn.recipe.net_from_metadata` reads back. The lecture's MLP (`--preset classic`) never comes
here, so its models stay bit for bit as they were.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpcli import task as tasks
from mlpcli.config import ModelConfig, Settings, TrainConfig
from mlpcli.errors import UsageError
from mlpcli.nn.recipe import PRESETS as RECIPES
from mlpcli.nn.recipe import RecipeConfig, RecipeNet, preset, resolve_member_batches
from mlpcli.option_parsers import flag

if TYPE_CHECKING:
    from mlpcli.preprocessing import Preprocessor
    from mlpcli.training import Metric, Trainer

#: Options of the lecture's MLP that the recipe has no use for: giving one is an error.
CLASSIC_ONLY = (
    ("model", "output_activation"),
    ("model", "loss"),
    ("model", "init"),
    ("model", "leaky_slope"),
    ("model", "batchnorm"),
    ("model", "residual"),
    ("train", "schedule"),
    ("train", "momentum"),
    ("train", "lr_step_size"),
    ("train", "lr_gamma"),
    ("train", "lr_factor"),
    ("train", "lr_patience"),
    ("train", "min_lr"),
)
#: Options only the recipe reads (at these values they mean "off").
RECIPE_ONLY = (
    ("ensemble", 1),
    ("ensemble_groups", 1),
    ("bag", False),
    ("label_smoothing", None),
)

_DEFAULTS = {"model": ModelConfig(), "train": TrainConfig()}


def uses_recipe(settings: Settings) -> bool:
    return settings.model.preset in RECIPES


def check_classic(settings: Settings) -> None:
    """`--ensemble`, `--bag` and `--label-smoothing` need the recipe; say so."""
    for name, off in RECIPE_ONLY:
        if getattr(settings.model, name) != off:
            raise UsageError(
                f"{flag(name)} applies to the recipe; add --preset realmlp_td (the lecture's "
                "MLP, --preset classic, trains one network without it)."
            )


def auto_activation(task: str) -> str:
    """`--activation auto`: RealMLP-TD's choice for the task (SELU, or Mish for regression)."""
    return preset("realmlp_td", recipe_kind(task)).activation


def recipe_kind(task: str) -> str:
    """The recipe's defaults differ between classification and regression only."""
    return "classification" if tasks.get(task).classification else "regression"


def recipe_config(settings: Settings, task: str) -> RecipeConfig:
    """The recipe of the settings' preset for `task`, with the options that map onto it."""
    m, t = settings.model, settings.train
    for section, name in CLASSIC_ONLY:
        if getattr(getattr(settings, section), name) != getattr(_DEFAULTS[section], name):
            raise UsageError(
                f"{flag(name)} applies to --preset classic; leave it out with --preset "
                f"{m.preset} (see README, 'Presets')."
            )
    if t.optimizer != "adamw":
        raise UsageError(
            f"--preset {m.preset} trains with adamw; leave out --optimizer {t.optimizer} or "
            "use --preset classic."
        )
    if len(set(m.activation)) > 1:
        raise UsageError(
            f"--preset {m.preset} uses one hidden activation for every layer; got "
            f"{','.join(m.activation)}."
        )
    if m.bag and m.ensemble < 2:
        raise UsageError("--bag needs an ensemble to bag; add --ensemble K (K >= 2).")
    base = preset(m.preset, recipe_kind(task))
    activation = base.activation if m.activation[0] == "auto" else m.activation[0]
    batch = t.batch_size
    batch_size = base.batch_size if batch == "auto" else 1 << 30 if batch == "full" else int(batch)
    return dataclasses.replace(
        base,
        hidden_layer_sizes=tuple(m.hidden),
        activation=activation,
        dropout=m.dropout,
        weight_decay=base.weight_decay if t.weight_decay is None else t.weight_decay,
        label_smoothing=base.label_smoothing if m.label_smoothing is None else m.label_smoothing,
        lr=base.lr if t.lr is None else t.lr,
        beta2=base.beta2 if t.beta2 is None else t.beta2,
        epochs=t.epochs,
        batch_size=batch_size,
        n_members=m.ensemble,
        bag=m.bag,
        ensemble=m.ensemble_kind,
        embedding=m.embedding,
    )


def numeric_columns(pre: Preprocessor) -> list[int]:
    """The network inputs that hold a numeric column's value (what the embedding embeds)."""
    slices = pre.input_slices()
    return [int(slices[c][0]) for c, kind in pre.input_kinds().items() if kind == "numeric"]


def categorical_blocks(pre: Preprocessor) -> list[tuple[int, int]]:
    """Each categorical column's one-hot inputs [start, stop) (wide ones get an embedding)."""
    slices = pre.input_slices()
    blocks = [slices[c] for c, kind in pre.input_kinds().items() if kind == "categorical"]
    return [(int(s[0]), int(s[-1]) + 1) for s in blocks]


def make_recipe_trainer(
    settings: Settings,
    X: np.ndarray,
    Y: np.ndarray,
    task: str,
    pre: Preprocessor,
    options: Any,
    rng: np.random.Generator,
    metric: Metric | None,
) -> Trainer:
    """An initialised recipe network and its trainer; `options` are the loop's (`fit_options`),
    to which the recipe adds its epochs, batch size and ties to the later epoch."""
    from mlpcli.training import recipe_trainer

    config = resolve_member_batches(recipe_config(settings, task), len(X))
    net = RecipeNet(
        X.shape[1],
        Y.shape[1],
        tasks.get(task).default_loss,
        config,
        numeric_columns(pre),
        settings.model.dtype,
        seed=rng,
        categorical=categorical_blocks(pre),
    )
    net.initialise(X)
    if config.clamp_output:
        net.set_output_range(Y)
    options = dataclasses.replace(
        options, epochs=config.epochs, batch_size=net.trainer_batch_size(), ties="later"
    )
    t = settings.train
    adam = {k: v for k, v in (("beta1", t.beta1), ("eps", t.eps)) if v is not None}
    return recipe_trainer(net, options, rng, metric, **adam)


def single_logits(net: RecipeNet, X: np.ndarray) -> np.ndarray:
    """The output pre-activations of a one-member recipe network (`--calibrate`); one
    temperature cannot rescale an ensemble's averaged probabilities, so K > 1 is refused."""
    if net.config.n_members > 1:
        raise UsageError(
            "--calibrate fits one temperature to one network's logits; an --ensemble model "
            "averages several networks' probabilities. Leave out one of the two."
        )
    Z = [net._logits(X[i : i + 65536], False, None)[0] for i in range(0, max(len(X), 1), 65536)]
    return np.concatenate(Z).astype(np.float64)


def training_weights(net: Any, sample_weight: np.ndarray | None, n: int) -> np.ndarray | None:
    """The trainer's sample weights: as given, or with `--bag` one column per member, 0 on
    the rows of that member's fold (K random folds of the n training rows)."""
    if not isinstance(net, RecipeNet) or not net.config.bag:
        return sample_weight
    return bag_weights(net.rng, n, net.config.n_members, net.dtype, sample_weight)


def bag_weights(
    rng: np.random.Generator,
    n: int,
    n_members: int,
    dtype: np.dtype,
    sample_weight: np.ndarray | None,
) -> np.ndarray:
    """(n, K) weights: column k is 0 on the rows of fold k (K random folds of n rows)."""
    K = n_members
    fold = np.empty(n, dtype=np.intp)
    fold[rng.permutation(n)] = np.arange(n) % K
    weights: np.ndarray = (fold[:, None] != np.arange(K)[None, :]).astype(dtype)
    return weights if sample_weight is None else weights * np.asarray(sample_weight)[:, None]


# --------------------------------------------------------------------------- model file
def optimizer_hyperparameters(net: Any, classic: Any) -> dict[str, Any]:
    """The optimizer's hyperparameters as the model file records them: the recipe's own
    (initial lr, beta2, weight decay before their schedules; the schedules are in `recipe`),
    else the classic optimizer's."""
    if not isinstance(net, RecipeNet):
        return dict(classic.hyperparameters())
    c = net.config
    hyper = dict(classic.hyperparameters())
    hyper.update(lr=c.lr, beta2=c.beta2, weight_decay=c.weight_decay)
    return hyper


def recipe_metadata(net: RecipeNet, settings: Settings) -> dict[str, Any]:
    """The model file's `recipe` entry: what rebuilds the network exactly."""
    return {
        "preset": settings.model.preset,
        "config": net.config.to_dict(),
        "numeric": list(net.numeric or []),
        "categorical": [list(block) for block in net.categorical],
        "loss": net.loss_name,
    }
