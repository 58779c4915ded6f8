"""What `mlpcli inspect` shows of a model file (`describe_model`): its task, layers, features
with their training statistics, training history, metrics and settings. The settings are shown
as the run resolved them (`resolved_settings`, `settings_shown`), without those the optimizer
and schedule do not take (`settings_not_taken`); `report` lists them by the same rules.

It reads only the metadata and the preprocessing arrays and imports no pandas, so `inspect`
starts without paying pandas' 0.4 s import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlpcli import modelfile
from mlpcli.errors import ModelFileError


# --------------------------------------------------------------------------- settings as run
def preset_name(meta: Mapping[str, Any]) -> str:
    """Which preset trained a model: the recipe's name, else classic (files from before
    presets existed are classic too); `auto -> name` when `--preset auto` chose it."""
    if "auto" in meta:
        return f"auto -> {meta['auto']['chosen']}"
    if "recipe" in meta:
        return str(meta["recipe"].get("preset", "realmlp_td"))
    return str(meta.get("settings", {}).get("model", {}).get("preset", "classic"))


def auto_choice(choice: Mapping[str, Any] | None) -> str | None:
    """`--preset auto`'s choice in a line: each candidate's validation score, the winner's
    marked (None for a model trained otherwise)."""
    if not choice:
        return None

    def text(name: str) -> str:
        score = choice["scores"].get(name)
        shown = "n/a" if score is None else f"{score:.4f}"
        return f"{name} {shown}" + (" (chosen)" if name == choice["chosen"] else "")

    return f"validation {choice['metric']}: " + ", ".join(map(text, choice["scores"]))


def resolved_settings(meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """By settings section, the value a setting took in the run where it differs from the
    stored one (`--batch-size auto` -> the rows per step used, `--loss auto` -> ce, an unset
    `--lr` -> the optimizer's). A value an older file does not record is left out, so the
    setting shows as given."""
    from mlpcli.nn import activations

    arch = meta.get("architecture", {})
    hidden = list(arch.get("activation", []))
    inits: list[str] | None = None  # `--init auto`: each layer's activation's own
    if "recipe" not in meta and not arch.get("init") and "output_activation" in arch:
        inits = [activations.get(name).init for name in [*hidden, arch["output_activation"]]]
    known = {
        "data": {"task": meta.get("task")},
        "model": {
            "loss": arch.get("loss"),
            "activation": hidden or None,
            "output_activation": arch.get("output_activation"),
            "init": inits,
        },
        "train": {
            "batch_size": meta.get("training", {}).get("batch_size"),
            "monitor": meta.get("training", {}).get("monitor"),
            "lr": meta.get("optimizer", {}).get("lr"),
            "threshold": meta.get("threshold", {}).get("value"),
        },
    }
    stored = meta.get("settings", {})
    return {
        section: {
            key: value
            for key, value in values.items()
            if value is not None
            and key in stored.get(section, {})
            and not _same(value, stored[section][key])
        }
        for section, values in known.items()
    }


#: What `inspect` shows of a recipe model's own training (its schedules replace the lecture's
#: `--schedule`).
RECIPE_SHOWN = (
    "n_members",
    "embedding",
    "label_smoothing",
    "lr_schedule",
    "dropout_schedule",
    "weight_decay_schedule",
)


def settings_not_taken(train: Mapping[str, Any], recipe: bool = False) -> set[str]:
    """The stored train settings a model's optimizer and schedule do not take, as `inspect` and
    `report` leave them out: every optimizer's hyperparameters (the optimizer record lists the
    ones it used) and the options of the schedules not chosen; for a `recipe` model also the
    lecture's MLP's own options (`presets.CLASSIC_ONLY`: its schedules are the recipe's)."""
    from mlpcli import optimizers, schedules

    if recipe:
        from mlpcli.presets import CLASSIC_ONLY

        lecture = {name for section, name in CLASSIC_ONLY if section == "train"}
        return (settings_not_taken(train) | lecture) & set(train)

    def options(cls: type[schedules.Schedule]) -> set[str]:
        return {schedules.PARSERS[key][0] for key in cls.HYPERPARAMETERS}

    of_optimizers = {k for cls in optimizers.OPTIMIZERS.values() for k in cls.HYPERPARAMETERS}
    chosen = schedules.SCHEDULES.get(str(train.get("schedule")))
    of_schedules = set().union(*(options(cls) for cls in schedules.SCHEDULES.values()))
    unused = of_schedules - (options(chosen) if chosen is not None else set())
    return (of_optimizers | unused) & set(train)


def settings_shown(
    given: Mapping[str, Any], resolved: Mapping[str, Any], hidden: set[str] | None = None
) -> dict[str, Any]:
    """One settings section as `inspect` and `report` list it: without `hidden`, and a value
    resolved in the run (`resolved_settings`) with what was given, as in `32 (auto)`."""
    return {
        key: _with_given(resolved[key], value) if key in resolved else value
        for key, value in given.items()
        if key not in (hidden or set())
    }


def _with_given(value: Any, given: Any) -> str:
    def text(v: Any) -> str:
        return ", ".join(map(str, v)) if isinstance(v, list | tuple) else str(v)

    return f"{text(value)} ({'default' if given is None else text(given)})"


def _same(value: Any, given: Any) -> bool:
    """A per-layer list equals one value given for every layer (`--activation relu`)."""
    if isinstance(value, list) and isinstance(given, list):
        return (set(value) == set(given) and len(set(given)) == 1) or value == given
    return bool(value == given)


# --------------------------------------------------------------------------- inspect
def _layers(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    arch = meta["architecture"]
    hidden = list(arch["hidden_layer_sizes"])
    activation = list(arch["activation"]) or ["relu"]
    activation = activation * len(hidden) if len(activation) == 1 else activation
    names = meta.get("layer_names") or [f"layer{i + 1}" for i in range(len(hidden))] + ["output"]
    counts = meta.get("n_parameters") or [None] * (len(hidden) + 1)
    for key, values in (("layer_names", names), ("n_parameters", counts)):
        if len(values) != len(hidden) + 1:
            raise ModelFileError(
                f"model metadata field '{key}' has {len(values)} entries for "
                f"{len(hidden) + 1} layers; the file is damaged or was not written by mlpcli."
            )
    sizes = [arch["n_inputs"], *hidden, arch["n_outputs"]]
    layers = []
    for i in range(len(hidden) + 1):
        output = i == len(hidden)
        layers.append(
            {
                "name": names[i],
                "kind": "output" if output else "hidden",
                "inputs": sizes[i],
                "units": sizes[i + 1],
                "activation": arch["output_activation"] if output else activation[i],
                "batchnorm": bool(arch["batchnorm"]) and not output,
                "dropout": 0.0 if output else float(arch["dropout"]),
                "residual": bool(arch["residual"]) and 0 < i < len(hidden),
                "n_parameters": counts[i],
            }
        )
    return layers


def _features(meta: Mapping[str, Any], stats: Mapping[str, NDArray[np.float64]]) -> list[Any]:
    """One record per input column, as `Preprocessor.describe()` gives it."""
    state = meta["preprocessing"]
    options = state.get("options", {})
    numeric = 0
    records: list[dict[str, Any]] = []
    for column in state.get("columns", []):
        if column["kind"] in modelfile.LEVEL_KINDS:
            records.append(modelfile.level_record(column))
            continue
        try:
            values = [float(stats[f"pre.{k}"][numeric]) for k in ("impute", "center", "scale")]
        except (KeyError, IndexError):
            raise ModelFileError(
                "the preprocessing arrays do not match its column list; the file is damaged."
            ) from None
        numeric += 1
        records.append(
            {
                "column": column["name"],
                "kind": "numeric",
                "log1p": options.get("log1p", False),
                "impute": options.get("impute"),
                "impute_value": values[0],
                "missing_indicator": bool(column.get("indicator", False)),
                "scaling": options.get("scale"),
                "center": values[1],
                "scale": values[2],
            }
        )
    return records


def describe_model(path: str | Path) -> dict[str, Any]:
    """Everything about a model file, from its metadata and preprocessing arrays: architecture,
    parameter counts, optimizer and hyperparameters, preprocessing, labels, training summary,
    per-epoch history, metrics and the export formats it supports. No data and no pandas."""
    from mlpcli import export

    meta, arrays = modelfile.load_checked(path)  # every array checked; the weights too
    stats = {k: np.asarray(v, np.float64) for k, v in arrays.items() if not k.startswith("net.")}
    try:
        layers = _layers(meta)
        features = _features(meta, stats)
    except ModelFileError as exc:
        raise ModelFileError(f"'{path}': {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelFileError(f"'{path}': the model metadata is incomplete ({exc}).") from None
    arch = meta["architecture"]
    target = meta["target"]
    training = dict(meta["training"])
    history = training.pop("history", [])
    provenance = meta.get("provenance", {})
    counts = [layer["n_parameters"] for layer in layers]
    labels: dict[str, Any] = {"targets": target.get("targets", []), "labels": target.get("labels")}
    if "values" in target:
        labels["values"] = target["values"]
    if "target.mean" in stats:
        labels["scaling"] = {
            "mean": stats["target.mean"].tolist(),
            "std": stats["target.std"].tolist(),
        }
    return {
        "model": str(path),
        "format_version": meta["format_version"],
        "mlpcli_version": meta["mlpcli_version"],
        "task": meta["task"],
        "task_reason": meta.get("task_reason"),
        "preset": preset_name(meta),
        "recipe": meta.get("recipe", {}).get("config"),
        "auto": meta.get("auto"),
        "target": labels,
        "id_columns": meta.get("id_columns", []),
        "architecture": {
            "n_inputs": arch["n_inputs"],
            "n_outputs": arch["n_outputs"],
            "layers": layers,
            "n_parameters": None if None in counts else sum(counts),
            **{
                k: arch.get(k)
                for k in ("loss", "dtype", "init", "weight_decay", "leaky_relu_slope")
            },
        },
        "optimizer": meta.get("optimizer", {}),
        "hyperparameters": meta["settings"].get("train", {}),
        "resolved": resolved_settings(meta),
        "preprocessing": {
            "options": meta["preprocessing"].get("options", {}),
            "n_columns": len(features),
            "n_inputs": arch["n_inputs"],
            "features": features,
        },
        "training": {
            **training,
            "seed": provenance.get("seed"),
            "inputs": provenance.get("inputs", []),
            "mlpcli_version": provenance.get("mlpcli_version", meta["mlpcli_version"]),
            "command": provenance.get("command"),
        },
        "history": history,
        "metrics": meta["metrics"],
        "settings": meta["settings"],
        "export_formats": export.support(meta),
        "calibration": meta.get("calibration"),
        "threshold": meta.get("threshold"),
    }
