"""Every option of `train`, defined once: frozen dataclasses whose fields carry their help text.

`cli/options.py` turns these fields into Typer options for `train` (and later `cv` and `tune`),
`--config FILE` and search spaces use the field names as keys, and the resolved settings are
stored in the model file. Each field's `parse` (from `option_parsers`) turns a command-line
string, a TOML value or a stored JSON value into the canonical value, raising `UsageError` that
names the option. No numpy or pandas here: `--help` imports this module.

Longer than 600 lines on purpose: the four sections' fields, each with its help text, are the
single source of every option. Splitting them up would scatter that source.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlpcli.errors import UsageError
from mlpcli.option_parsers import (
    Parser,
    choice,
    number,
    parse_batch_size,
    parse_bool,
    parse_class_weight,
    parse_decimal,
    parse_hidden,
    parse_list,
    parse_optional_str,
    parse_raw_list,
    parse_regex,
    parse_sep,
    parse_thousands,
    parse_threshold,
)

#: "auto" and the names of `task.TASKS`, spelt out because `--help` must not import numpy
#: (tests/test_task.py checks that the two agree).
TASKS = ("auto", "binary", "multiclass", "multilabel", "regression")
IMPUTE = ("median", "mean", "constant")
SCALE = ("standard", "minmax", "robust", "robust_range", "none")
HIGH_CARDINALITY = ("frequency", "onehot")
CLIPS = ("none", "smooth")
HIDDEN_ACTIVATIONS = (
    "auto",
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "softplus",
    "elu",
    "gelu",
    "selu",
    "mish",
)
OUTPUT_ACTIVATIONS = ("auto", "identity", "sigmoid", "softmax", "relu", "softplus")
LOSSES = ("auto", "mse", "mae", "huber", "bce", "ce")
OPTIMIZERS = ("gd", "sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "rprop")
SCHEDULES = ("constant", "step", "cosine", "plateau")
INITIALIZERS = ("auto", "he_normal", "he_uniform", "glorot_normal", "glorot_uniform")
MONITORS = ("val_loss", "val_metric", "train_loss")
DTYPES = ("float32", "float64")
#: `--threshold auto` rules (the keys of `calibration.THRESHOLD_METRICS`; tests check they agree).
THRESHOLD_METRICS = ("youden", "f1")
#: Optimizers that need the full batch (the trainer refuses mini-batches for them).
FULL_BATCH_OPTIMIZERS = ("gd", "rprop")
#: How the recipe's members hold their hidden weights (`nn.recipe.ENSEMBLE_KINDS`).
ENSEMBLE_KINDS = ("packed", "batch")
#: Numeric embeddings of the recipe (`nn.recipe.EMBEDDINGS`).
EMBEDDINGS = ("none", "pbld", "ple")

#: Preset name -> the option values it stands for; options given on the command line or in
#: `--config` override them. `classic` is the lecture's MLP (the options' own defaults);
#: `realmlp_td` is the quality recipe (`nn.recipe`: RealMLP-TD, Holzmueller et al. 2024), whose
#: task-dependent values (activation `auto`, learning rate, label smoothing) follow the task.
PRESETS: dict[str, dict[str, Any]] = {
    "classic": {},
    # Trains classic and realmlp_td and keeps the better on validation (`mlpcli.auto`); the
    # shared preprocessing (cv, tune) is the recipe's, and its recipe candidate is an ensemble
    # of 5 (`auto.candidate_settings`: the lecture's MLP trains one network).
    "auto": {"scale": "robust_range", "clip": "smooth", "ensemble": 5},
    "realmlp_td": {
        "hidden": "256,256,256",
        "activation": "auto",
        "dropout": 0.15,
        "weight_decay": 0.02,
        "beta2": 0.95,
        "epochs": 256,
        "batch_size": 256,
        "optimizer": "adamw",
        "patience": "off",
        "monitor": "val_metric",
        "scale": "robust_range",
        "clip": "smooth",
        "embedding": "pbld",
    },
}

#: Hidden sizes of a preset's ensemble members when neither --hidden nor the config file gives
#: them: with --ensemble K >= 2 the recipe's members are half as wide as its one network. Over
#: 3 seeds of bench/quality.py's 13 tables, 5 members of 3 x 128 had a lower error than one
#: 3 x 256 network, at about half the cost of 5 full-width members (bench/QUALITY.md).
ENSEMBLE_HIDDEN: dict[str, str] = {"realmlp_td": "128,128,128"}


#: The preset of a run that names none (unless $MLPCLI_PRESET names one). The options' own
#: defaults are classic's (so model files from before presets read back as classic); `resolve`
#: lays this preset over them. `auto`: on bench/quality.py's 13 tables x 3 seeds its error was
#: 0.82x gradient boosting's against classic's 0.89x (bench/QUALITY.md).
#: tests/conftest.py sets MLPCLI_PRESET=classic for the suite.
DEFAULT_PRESET = "auto"
PRESET_ENV = "MLPCLI_PRESET"


def default_preset() -> str:
    """$MLPCLI_PRESET if set (a lab-wide choice, e.g. classic), else `DEFAULT_PRESET`."""
    name = os.environ.get(PRESET_ENV, "").strip() or DEFAULT_PRESET
    if name not in PRESETS:
        raise UsageError(
            f"${PRESET_ENV}={name!r} is not a preset; choose one of: {', '.join(PRESETS)} "
            "(or unset it)."
        )
    return name


def parse_activation(name: str, value: Any) -> tuple[str, ...]:
    """One activation for every hidden layer, or a comma-separated one per layer."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    check = choice(HIDDEN_ACTIVATIONS)
    return tuple(check(name, item.strip()) for item in items)


# --------------------------------------------------------------------------- fields
def option(
    default: Any,
    help: str,
    parse: Parser,
    *,
    metavar: str | None = None,
    repeatable: bool = False,
    short: str | None = None,
    cli: bool = True,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field that is also a command-line option."""
    meta = {
        "help": help,
        "parse": parse,
        "metavar": metavar,
        "repeatable": repeatable,
        "short": short,
        "cli": cli,
        "choices": choices,
    }
    if isinstance(default, list | dict):
        raise TypeError("use tuples for defaults")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    """Which table, how to read it, which columns, and the validation split."""

    target: tuple[str, ...] = option(
        (),
        "Target column; repeat for several targets.",
        parse_raw_list,
        metavar="COL",
        repeatable=True,
        short="-t",
    )
    id: tuple[str, ...] = option(
        (),
        "ID column kept out of the features and carried into predictions; repeatable.",
        parse_raw_list,
        metavar="COL",
        repeatable=True,
    )
    features: tuple[str, ...] = option(
        (),
        "Feature columns: names or glob patterns, repeatable or comma-separated "
        "[default: every other column].",
        parse_list,
        metavar="PATTERN",
        repeatable=True,
    )
    labels: str | None = option(
        None,
        "A separate sample sheet (targets, groups, covariates) joined to DATA by the --on "
        "column; IDs found in only one of the tables are counted in a warning.",
        parse_optional_str,
        metavar="FILE",
    )
    on: str | None = option(
        None,
        "The ID column shared by DATA and the --labels sample sheet [default: DATA's row ID].",
        parse_optional_str,
        metavar="COL",
    )
    features_file: str | None = option(
        None,
        "File of feature column names, one a line ('#' starts a comment); with --features, "
        "both are used.",
        parse_optional_str,
        metavar="FILE",
    )
    drop: tuple[str, ...] = option(
        (),
        "Columns to leave out: names or glob patterns.",
        parse_list,
        metavar="PATTERN",
        repeatable=True,
    )
    categorical: tuple[str, ...] = option(
        (),
        "Columns to one-hot encode even if numeric.",
        parse_list,
        metavar="COL",
        repeatable=True,
    )
    positive_class: str | None = option(
        None,
        "Positive class of a binary target (the one sensitivity, ROC AUC and the threshold refer "
        "to) [default: the second label in sorted order].",
        parse_optional_str,
        metavar="LABEL",
    )
    numeric: tuple[str, ...] = option(
        (),
        "Columns read as numbers even where some cells are not; those cells become missing "
        "(and are counted in a warning).",
        parse_list,
        metavar="COL",
        repeatable=True,
    )
    thousands: str | None = option(
        None,
        "Thousands separator inside numbers, e.g. ',' for 1,234,567 [default: none].",
        parse_thousands,
        metavar="CHAR",
    )
    strict: bool = option(
        False,
        "Stop with an error wherever mlpcli would warn and go on (repeated IDs, mostly-numeric "
        "text columns, pooled categorical levels, dropped empty columns, rare classes).",
        parse_bool,
    )
    task: str = option(
        "auto",
        "Learning task; auto decides from the target and says why.",
        choice(TASKS),
        choices=TASKS,
    )
    sep: str | None = option(
        None,
        "Field delimiter [default: from the extension, else sniffed].",
        parse_sep,
        metavar="CHAR",
    )
    decimal: str = option(
        ".", "Decimal mark: '.' or ',' (European exports).", parse_decimal, metavar="CHAR"
    )
    na_values: tuple[str, ...] = option(
        ("", "NA", "N/A", "NaN", "nan", "null", "?", "."),
        "Tokens read as missing; repeatable (replaces the default list).",
        parse_raw_list,
        metavar="TOKEN",
        repeatable=True,
    )
    encoding: str | None = option(
        None,
        "Text encoding [default: UTF-8, with or without BOM].",
        parse_optional_str,
        metavar="NAME",
    )
    sheet: str | None = option(
        None,
        "Sheet of an Excel (.xlsx) table [default: the first].",
        parse_optional_str,
        metavar="NAME",
    )
    layer: str | None = option(
        None,
        "Layer of an AnnData (.h5ad) file used as the features [default: X].",
        parse_optional_str,
        metavar="NAME",
    )
    transpose: bool = option(
        False,
        "The table is features x samples (genes as rows, sample IDs in the header).",
        parse_bool,
    )
    group: str | None = option(
        None,
        "Column of groups (patients, animals, batches) never split across train and validation.",
        parse_optional_str,
        metavar="COL",
    )
    group_pattern: str | None = option(
        None,
        "Regular expression applied to --group values; its first capture group (or the whole "
        "match) is the group, e.g. '^([^_]+)_' makes 309_1 and 309_2 one mouse.",
        parse_regex,
        metavar="REGEX",
    )
    valid_fraction: float = option(
        0.2,
        "Fraction of rows held out for validation; 0 for none.",
        number(float, 0.0, 1.0, high_inclusive=False),
    )
    valid_file: str | None = option(
        None,
        "A separate validation table, instead of a split.",
        parse_optional_str,
        metavar="FILE",
    )


@dataclass(frozen=True)
class PreprocessConfig:
    """How features are imputed, encoded and scaled (fitted on training rows only)."""

    impute: str = option(
        "median", "Imputation of missing numeric values.", choice(IMPUTE), choices=IMPUTE
    )
    fill_value: float = option(0.0, "Value for --impute constant.", number(float))
    missing_indicators: bool = option(
        False, "Add a 0/1 column per feature that had missing values.", parse_bool
    )
    scale: str = option(
        "standard",
        "Feature scaling (robust_range: median and IQR, as RealMLP-TD).",
        choice(SCALE),
        choices=SCALE,
    )
    clip: str = option(
        "none",
        "Clipping after scaling: smooth is x / sqrt(1 + (x/3)^2) (RealMLP-TD).",
        choice(CLIPS),
        choices=CLIPS,
    )
    log1p: bool = option(False, "Apply log(1 + x) to numeric features (counts).", parse_bool)
    top_variance: int | None = option(
        None,
        "Keep only the N numeric features with the largest variance on the training rows "
        "(wide data, p >> n); categorical features are kept [default: all].",
        number(int, 1, optional=True),
        metavar="N",
    )
    min_level_count: int = option(
        5,
        "Categorical levels seen in fewer training rows pool into one level '__other__' "
        "(when at least two are that rare); 1 keeps every level.",
        number(int, 1),
    )
    max_levels: int = option(
        50,
        "Most levels a categorical column is one-hot encoded with (after --min-level-count); a "
        "column with more is encoded by --high-cardinality.",
        number(int, 2),
    )
    high_cardinality: str = option(
        "frequency",
        "Encoding of a categorical column with more than --max-levels levels: frequency (one "
        "column, each level's share of the training rows; 0 for an unseen level) or onehot "
        "(the least frequent levels pool into '__other__').",
        choice(HIGH_CARDINALITY),
        choices=HIGH_CARDINALITY,
    )


@dataclass(frozen=True)
class ModelConfig:
    """The network's architecture."""

    preset: str = option(
        "classic",
        "A set of defaults: classic (the lecture's MLP), realmlp_td (the quality recipe: "
        "robust scaling, periodic embeddings, 3 x 256 SELU/Mish, AdamW on a coslog4 schedule) "
        "or auto (trains both, the recipe as 5 members, and keeps the recipe where it is clearly "
        "better on the validation rows; see README). Options "
        f"you give override the preset's values [default: {DEFAULT_PRESET}, or $MLPCLI_PRESET].",
        choice(tuple(PRESETS)),
        choices=tuple(PRESETS),
    )
    ensemble: int = option(
        1,
        "Members of the ensemble, trained at once and averaged (--preset realmlp_td; 5 for "
        "--preset auto's recipe, 1 its single network). With K >= 2 and no --hidden, each "
        "member has 3 x 128 units (one network: 3 x 256).",
        number(int, 1, 64),
        metavar="K",
    )
    ensemble_kind: str = option(
        "packed",
        "How members hold their hidden weights: packed (each its own) or batch (a shared "
        "matrix with per-member rank-1 adapters, BatchEnsemble/TabM).",
        choice(ENSEMBLE_KINDS),
        choices=ENSEMBLE_KINDS,
    )
    ensemble_groups: int = option(
        1,
        "Train the --ensemble members as G separate networks of about K/G members each (one "
        "task each, spread by --n-jobs or --backend dask), stacked into one model; a "
        "different ensemble than G = 1, as another seed gives (README, 'Cluster').",
        number(int, 1, 64),
        metavar="G",
    )
    bag: bool = option(
        False,
        "Bag the ensemble: member k of K does not train on the k-th of K random folds of the "
        "training rows (needs --ensemble 2 or more).",
        parse_bool,
    )
    embedding: str = option(
        "none",
        "Numeric embedding in front of the recipe's network: pbld (periodic) or ple "
        "(piecewise-linear) (--preset realmlp_td).",
        choice(EMBEDDINGS),
        choices=EMBEDDINGS,
    )
    label_smoothing: float | None = option(
        None,
        "Label smoothing of the cross-entropy (--preset realmlp_td) [default: 0.1 for "
        "classification, else 0].",
        number(float, 0.0, 1.0, high_inclusive=False, optional=True),
    )
    hidden: tuple[int, ...] = option(
        (64, 32),
        "Hidden layer sizes, comma-separated; empty ('') for none [default: 64,32; "
        "--preset realmlp_td: 256,256,256, or 128,128,128 per member with --ensemble 2+].",
        parse_hidden,
        metavar="SIZES",
    )
    activation: tuple[str, ...] = option(
        ("relu",),
        "Hidden activation, one for all or one per layer, comma-separated "
        "(auto: SELU for classification, Mish for regression).",
        parse_activation,
        metavar="NAME",
        choices=HIDDEN_ACTIVATIONS,
    )
    output_activation: str = option(
        "auto",
        "Output activation [auto: sigmoid, softmax or identity by task].",
        choice(OUTPUT_ACTIVATIONS),
        choices=OUTPUT_ACTIVATIONS,
    )
    loss: str = option(
        "auto", "Loss [auto: bce, ce or mse by task].", choice(LOSSES), choices=LOSSES
    )
    init: str = option(
        "auto",
        "Weight initialiser [auto: He for the relu family, else Glorot].",
        choice(INITIALIZERS),
        choices=INITIALIZERS,
    )
    leaky_slope: float = option(
        0.01, "Negative slope of leaky_relu.", number(float, 0.0, 1.0, high_inclusive=False)
    )
    batchnorm: bool = option(False, "Batch normalisation after each hidden layer.", parse_bool)
    dropout: float = option(
        0.0,
        "Dropout probability after each hidden layer.",
        number(float, 0.0, 1.0, high_inclusive=False),
    )
    residual: bool = option(
        False, "Skip connections between hidden layers of equal width.", parse_bool
    )
    dtype: str = option("float32", "Floating-point precision.", choice(DTYPES), choices=DTYPES)


@dataclass(frozen=True)
class TrainConfig:
    """The optimizer and the training loop."""

    optimizer: str = option("adam", "Optimizer.", choice(OPTIMIZERS), choices=OPTIMIZERS)
    lr: float | None = option(
        None,
        "Learning rate (initial step for rprop) [default: the optimizer's].",
        number(float, 0.0, low_inclusive=False, optional=True),
    )
    batch_size: int | str = option(
        "auto",
        "Mini-batch size, or 'full' [default: 32 at any table size, so models keep their "
        "results; full for gd and rprop; 256 with --preset realmlp_td, RealMLP-TD's default "
        "at any size].",
        parse_batch_size,
        metavar="N|full",
    )
    epochs: int = option(200, "Most epochs to train.", number(int, 1))
    patience: int | None = option(
        20,
        "Stop after this many epochs without improvement; 'off' to disable.",
        number(int, 1, optional=True),
    )
    min_delta: float = option(
        0.0,
        "Smallest change of the monitored value that counts as improvement.",
        number(float, 0.0),
    )
    monitor: str = option(
        "val_loss",
        "Value watched by early stopping and for the best epoch.",
        choice(MONITORS),
        choices=MONITORS,
    )
    weight_decay: float | None = option(
        None,
        "L2 weight decay (decoupled for adamw); not applied to biases "
        "[default: off; 0.01 for adamw].",
        number(float, 0.0, optional=True),
    )
    clip_norm: float | None = option(
        None,
        "Clip gradients to this global norm.",
        number(float, 0.0, low_inclusive=False, optional=True),
    )
    schedule: str = option(
        "constant", "Learning-rate schedule.", choice(SCHEDULES), choices=SCHEDULES
    )
    momentum: float | None = option(
        None,
        "beta of momentum, nesterov and rmsprop [default: 0.9].",
        number(float, 0.0, 1.0, high_inclusive=False, optional=True),
    )
    beta1: float | None = option(
        None,
        "Adam's beta1 [default: 0.9].",
        number(float, 0.0, 1.0, high_inclusive=False, optional=True),
    )
    beta2: float | None = option(
        None,
        "Adam's beta2 [default: 0.999].",
        number(float, 0.0, 1.0, high_inclusive=False, optional=True),
    )
    eps: float | None = option(
        None,
        "Adam's and rmsprop's epsilon [default: 1e-8].",
        number(float, 0.0, low_inclusive=False, optional=True),
    )
    lr_step_size: int | None = option(
        None,
        "--schedule step: epochs between decays [default: 10].",
        number(int, 1, optional=True),
    )
    lr_gamma: float | None = option(
        None,
        "--schedule step: decay factor [default: 0.5].",
        number(float, 0.0, 1.0, low_inclusive=False, high_inclusive=False, optional=True),
    )
    lr_factor: float | None = option(
        None,
        "--schedule plateau: factor applied on a plateau [default: 0.5].",
        number(float, 0.0, 1.0, low_inclusive=False, high_inclusive=False, optional=True),
    )
    lr_patience: int | None = option(
        None,
        "--schedule plateau: epochs without improvement before a cut [default: 5].",
        number(int, 1, optional=True),
    )
    min_lr: float | None = option(
        None,
        "--schedule cosine/plateau: the lowest learning rate [default: 0 / 1e-6].",
        number(float, 0.0, optional=True),
    )
    class_weight: str | dict[str, float] | None = option(
        None,
        "Class weights: 'balanced' or label=weight pairs.",
        parse_class_weight,
        metavar="SPEC",
    )
    seed: int = option(0, "Random seed: the same seed gives the same model.", number(int, 0))
    threads: int | None = option(
        None,
        "BLAS threads [default: all cores for train; 1 per task for cv, tune].",
        number(int, 1, optional=True),
    )
    calibrate: bool = option(
        False,
        "Temperature scaling: fit T on the validation rows' logits and apply softmax(z / T) "
        "(or sigmoid(z / T)) in every prediction (binary, multiclass).",
        parse_bool,
    )
    threshold: float | str | None = option(
        None,
        "Decision threshold stored in the model (binary, multilabel): a probability, or "
        "'auto' to choose it on the validation rows by --threshold-metric (binary) "
        "[default: 0.5].",
        parse_threshold,
        metavar="P|auto",
    )
    threshold_metric: str = option(
        "youden",
        "What --threshold auto maximises on the validation rows: youden (sensitivity + "
        "specificity - 1) or f1.",
        choice(THRESHOLD_METRICS),
        choices=THRESHOLD_METRICS,
    )
    baselines: bool = option(
        True,
        "Score a constant (majority class or mean) and a linear (no hidden layer) baseline "
        "next to the network, and hint at regularisation when train and validation differ "
        "much (train, cv).",
        parse_bool,
    )


SECTIONS: dict[str, type] = {
    "Data": DataConfig,
    "Preprocessing": PreprocessConfig,
    "Model": ModelConfig,
    "Training": TrainConfig,
}


@dataclass(frozen=True)
class Settings:
    """The fully resolved options of a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            name: _jsonable(dataclasses.asdict(getattr(self, name)))
            for name in ("data", "preprocess", "model", "train")
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Settings:
        return cls(
            data=_build(DataConfig, d.get("data", {})),
            preprocess=_build(PreprocessConfig, d.get("preprocess", {})),
            model=_build(ModelConfig, d.get("model", {})),
            train=_build(TrainConfig, d.get("train", {})),
        )

    def replace(self, **flat: Any) -> Settings:
        """A copy with options changed by flat name (`lr=0.01`, `hidden="64,32"`)."""
        return resolve(flat, base=self)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


T = TypeVar("T", "DataConfig", "PreprocessConfig", "ModelConfig", "TrainConfig")


def _build(cls: type[T], values: Mapping[str, Any]) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key in fields:
            kwargs[key] = fields[key].metadata["parse"](key, value)
    return cls(**kwargs)


def all_fields() -> dict[str, tuple[str, dataclasses.Field[Any]]]:
    """Every option by name -> (settings section attribute, dataclass field)."""
    out: dict[str, tuple[str, dataclasses.Field[Any]]] = {}
    for attr, cls in (
        ("data", DataConfig),
        ("preprocess", PreprocessConfig),
        ("model", ModelConfig),
        ("train", TrainConfig),
    ):
        for f in dataclasses.fields(cls):
            out[f.name] = (attr, f)
    return out


def normalise_key(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_")


def resolve(
    values: Mapping[str, Any],
    base: Settings | None = None,
    source: str = "",
    given_before: Collection[str] = (),
) -> Settings:
    """Settings from flat option values (None means "not given"), over `base` or the defaults.

    Unknown names are a `UsageError` that names them; `source` says where they came from.
    A `preset` other than the base's first sets every option of that preset (`PRESETS`), then
    the other values given here override them. `given_before`: options an earlier layer (the
    config file) gave, which count as given for `ensemble_width`.
    """
    fields = all_fields()
    given = {normalise_key(k): v for k, v in values.items() if v is not None}
    preset = given.get("preset")
    if base is None:  # the defaults: the options' own values under the default preset
        base, preset = Settings(), preset or default_preset()
    if preset is not None:
        name = fields["preset"][1].metadata["parse"]("preset", preset)
        if name != base.model.preset:
            values = {**PRESETS[name], **given, "preset": name}
    changes: dict[str, dict[str, Any]] = {}
    unknown = []
    for raw_key, value in values.items():
        key = normalise_key(raw_key)
        if key not in fields:
            unknown.append(raw_key)
            continue
        if value is None:
            continue
        attr, f = fields[key]
        changes.setdefault(attr, {})[key] = f.metadata["parse"](key, value)
    if unknown:
        where = f" in {source}" if source else ""
        close = difflib.get_close_matches(normalise_key(unknown[0]), list(fields), n=1)
        if close:
            raise UsageError(f"Unknown option {unknown[0]!r}{where}; did you mean {close[0]!r}?")
        known = ", ".join(sorted(fields))
        raise UsageError(
            f"Unknown option(s) {', '.join(map(repr, unknown))}{where}; known options: {known}."
        )
    settings = Settings(
        **{
            attr: dataclasses.replace(getattr(base, attr), **changes.get(attr, {}))
            for attr in ("data", "preprocess", "model", "train")
        }
    )
    hidden_given = "hidden" in given or "hidden" in map(normalise_key, given_before)
    return settings if hidden_given else ensemble_width(settings, base)


def ensemble_width(settings: Settings, base: Settings) -> Settings:
    """`settings` with their preset's member width (`ENSEMBLE_HIDDEN`) if they turn `base`
    into an ensemble at the width the preset gives one network (the caller knows hidden was not
    given). An ensemble `base` (a resumed model's, say) keeps the width it has."""
    m = settings.model
    narrow = ENSEMBLE_HIDDEN.get(m.preset)
    if narrow is None or m.ensemble < 2:
        return settings
    if base.model.ensemble >= 2 and base.model.preset == m.preset:
        return settings
    if m.hidden != parse_hidden("hidden", PRESETS[m.preset]["hidden"]):
        return settings  # a width given before (by a --config file, say) stays
    model = dataclasses.replace(m, hidden=parse_hidden("hidden", narrow))
    return dataclasses.replace(settings, model=model)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Flat option values from a TOML file; tables like [model] may group them."""

    from mlpcli.limits import MAX_CONFIG_BYTES, read_toml

    path = Path(path)
    doc = read_toml(path, "--config", MAX_CONFIG_BYTES)
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and normalise_key(key) not in all_fields():
            flat.update(value)
        else:
            flat[key] = value
    return flat
