"""What `mlpcli inspect` shows of a model file (`describe_model`): its task, layers, features
with their training statistics, training history, metrics and settings.

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
        "preset": modelfile.preset_name(meta),
        "recipe": meta.get("recipe", {}).get("config"),
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
        "resolved": modelfile.resolved_settings(meta),
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
