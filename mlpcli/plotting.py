"""Pictures of training and evaluation: learning curves, gradient norms, learning rate,
confusion matrices, ROC and precision-recall curves, predicted-vs-true and residuals.

Drawn with matplotlib's object API (`Figure` + the Agg canvas, never pyplot): no global state,
no display, safe in worker processes. matplotlib is the optional extra `plot`, imported inside
functions so `import mlpcli` and `--help` stay light; without it every entry point raises a
`UsageError` that says how to install it.

ROC and precision-recall points are computed here in NumPy with scikit-learn's definitions
(`roc_curve`, `precision_recall_curve`): one point per distinct score, so the trapezoid area of
the ROC curve is `metrics.roc_auc` and the step sum of the PR curve is `average_precision`.

About 640 lines on purpose: every figure shares the matplotlib access, saving and colours at
the top, and the curve points are the ones the evaluation figures draw.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mlpcli import task as tasks
from mlpcli.errors import (
    DataError,
    ModelFileError,
    OutputError,
    UsageError,
    choose,
    install_hint,
)
from mlpcli.outputs import atomic_path, check_writable

Floats = NDArray[np.float64]

INSTALL_HINT = install_hint("plot")

#: Image formats by file extension, each with the metadata field that carries the provenance.
FORMATS: dict[str, str] = {"png": "Description", "svg": "Description", "pdf": "Subject"}

#: Date fields cleared so that the same inputs give byte-identical SVG and PDF files, and Make
#: or Snakemake see no spurious change.
_NO_DATES: dict[str, dict[str, Any]] = {
    "png": {},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None},
}

_PANEL = (6.0, 4.6)  # inches per panel


# --------------------------------------------------------------------------- matplotlib access
def require_matplotlib(option: str = "plotting") -> None:
    """Fail before any work when matplotlib is missing (`option` names what needs it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            f"{option} needs matplotlib, which is not installed: {INSTALL_HINT}."
        ) from None


def _new_figure(width: float, height: float) -> Any:
    """A Figure bound to the Agg canvas; constrained layout keeps labels inside."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def image_format(path: str | Path, option: str = "--out") -> str:
    """The image format of `path`, from its extension; fails on an unsupported one."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UsageError(
            f"{option} '{path}': unknown image format '{suffix or '(no extension)'}'; "
            f"end the name with one of: {', '.join('.' + f for f in FORMATS)}."
        )
    return suffix


def _metadata(fmt: str, provenance: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {**_NO_DATES[fmt], "Title": "mlpcli"}
    if provenance is not None:
        meta[FORMATS[fmt]] = json.dumps(provenance, sort_keys=True, default=str)
    return meta


def save_figure(
    figure: Any,
    path: str | Path,
    option: str = "--out",
    provenance: dict[str, Any] | None = None,
    dpi: int = 120,
) -> Path:
    """Write `figure` atomically in the format its extension names, provenance embedded."""
    from matplotlib import rc_context

    fmt = image_format(path, option)
    # a fixed salt makes SVG element ids (otherwise random) the same on every run
    with atomic_path(path, option) as tmp, rc_context({"svg.hashsalt": "mlpcli"}):
        figure.savefig(tmp, format=fmt, dpi=dpi, metadata=_metadata(fmt, provenance))
    return Path(path)


def png_bytes(figure: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, for embedding in HTML."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata=_metadata("png", None))
    return buffer.getvalue()


def _colors(n: int) -> list[Any]:
    """tab10 for up to ten series, evenly spaced viridis beyond."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0.0, 0.95, n)]


def _integer_epochs(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _log_if_wide(ax: Any, values: Floats, ratio: float = 20.0) -> None:
    """Log y scale when positive values span more than `ratio`: losses and rates that fall by
    orders of magnitude stay readable."""
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > ratio:
        ax.set_yscale("log")


# --------------------------------------------------------------------------- training curves
def _column(history: list[dict[str, Any]], key: str) -> Floats:
    return np.array([np.nan if h.get(key) is None else h[key] for h in history], dtype=np.float64)


def training_figure(metadata: dict[str, Any], title: str = "") -> Any:
    """Four panels from a model's stored history: loss, validation metric (best epoch marked
    on both), per-layer gradient norm on a log scale, and the learning rate."""
    training = metadata.get("training", {})
    history: list[dict[str, Any]] = training.get("history") or []
    if not history:
        raise ModelFileError(
            f"{title or 'the model'}: no training history to plot (training stopped before "
            "the first epoch ended); retrain it."
        )
    task = str(metadata.get("task", ""))
    metric = tasks.TASKS[task].default_metric if task in tasks.TASKS else "metric"
    epochs = _column(history, "epoch")
    best = int(training.get("best_epoch") or 0)
    at_best = np.flatnonzero(epochs == best)

    figure = _new_figure(2 * _PANEL[0], 2 * _PANEL[1] * 0.85)
    axes = figure.subplots(2, 2, sharex=True)
    loss_ax, metric_ax, grad_ax, lr_ax = axes.ravel()

    loss_name = metadata.get("architecture", {}).get("loss", "loss")
    train_loss, val_loss = _column(history, "train_loss"), _column(history, "val_loss")
    _series(loss_ax, epochs, train_loss, "training", "C0")
    _series(loss_ax, epochs, val_loss, "validation", "C1")
    _log_if_wide(loss_ax, np.concatenate([train_loss, val_loss]))
    loss_ax.set_ylabel(f"loss ({loss_name})")
    loss_ax.set_title("Loss")

    train_metric, val_metric = _column(history, "train_metric"), _column(history, "val_metric")
    _series(metric_ax, epochs, train_metric, "training", "C0")
    _series(metric_ax, epochs, val_metric, "validation", "C1")
    if np.isnan(val_metric).all() and np.isnan(train_metric).all():
        metric_ax.text(
            0.5, 0.5, "no validation rows", ha="center", va="center", transform=metric_ax.transAxes
        )
    metric_ax.set_ylabel(metric)
    metric_ax.set_title(f"Validation {metric}")

    # the star sits on the series early stopping watched: validation, else training loss
    watched = train_loss if training.get("monitor") == "train_loss" else val_loss
    for ax, series in ((loss_ax, watched), (metric_ax, val_metric)):
        _mark_best(ax, best, series[at_best] if at_best.size else np.array([np.nan]))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")

    _gradient_panel(grad_ax, epochs, history, metadata)
    lr = _column(history, "lr")
    lr_ax.plot(epochs, lr, color="C2", drawstyle="steps-mid")
    _log_if_wide(lr_ax, lr, ratio=10.0)
    if lr_ax.get_yscale() == "linear":
        lr_ax.set_ylim(bottom=0.0, top=1.15 * np.nanmax(lr))
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_title(
        f"Learning rate ({metadata.get('settings', {}).get('train', {}).get('schedule', '')})"
    )
    for ax in (grad_ax, lr_ax):
        ax.set_xlabel("epoch")
    for ax in axes.ravel():
        _integer_epochs(ax)
        ax.grid(True, alpha=0.3)

    best_value = training.get("best_value")
    summary = (
        f"{task}, {training.get('epochs_run', len(history))} epochs, best epoch {best}"
        + (f" ({training.get('monitor')} {best_value:.4g})" if best_value is not None else "")
        + f", stopped: {training.get('stop_reason', '?')}"
    )
    figure.suptitle(f"{title}: {summary}" if title else summary)
    return figure


def _series(ax: Any, x: Floats, y: Floats, label: str, color: str) -> None:
    if np.isnan(y).all():
        return
    ax.plot(x, y, label=label, color=color, marker="." if len(x) <= 60 else None)


def _mark_best(ax: Any, best: int, value: Floats) -> None:
    if best <= 0:
        return
    ax.axvline(best, color="0.4", linestyle=":", linewidth=1.2, label=f"best epoch {best}")
    if np.isfinite(value[0]):
        ax.plot([best], [value[0]], marker="*", markersize=13, color="C3", zorder=5)


def _gradient_panel(
    ax: Any, epochs: Floats, history: list[dict[str, Any]], meta: dict[str, Any]
) -> None:
    """Gradient norm of each layer, log scale: vanishing or exploding layers stand out."""
    rows = [h.get("grad_norms") or [] for h in history]
    width = max((len(r) for r in rows), default=0)
    names = list(meta.get("layer_names") or [])
    names += [f"layer {i + 1}" for i in range(len(names), width)]
    norms = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        norms[i, : len(row)] = [np.nan if v is None else v for v in row]
    norms[~(norms > 0)] = np.nan  # zeros and NaN cannot sit on a log axis
    for j, color in enumerate(_colors(width)):
        ax.plot(epochs, norms[:, j], label=names[j], color=color)
    clip = meta.get("settings", {}).get("train", {}).get("clip_norm")
    if clip:
        ax.axhline(clip, color="black", linestyle="--", linewidth=1, label=f"clip_norm {clip:g}")
    if np.isfinite(norms).any():
        ax.set_yscale("log")
        ax.legend(loc="best", fontsize="small", ncol=1 + width // 8)
    else:
        ax.text(0.5, 0.5, "no gradient norms", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("gradient norm (log)")
    ax.set_title("Gradient norm per layer: watch the gradient!")


def plot_training(
    metadata: dict[str, Any],
    out: str | Path,
    title: str = "",
    provenance: dict[str, Any] | None = None,
) -> Path:
    """`mlpcli plot`: the training figure written to `out` (.png, .svg or .pdf), atomically."""
    image_format(out)
    check_writable(out, "--out")
    return save_figure(training_figure(metadata, title), out, "--out", provenance)


# --------------------------------------------------------------------------- curve points
def _ranked(y_true: ArrayLike, score: ArrayLike) -> tuple[Floats, Floats, Floats]:
    """True and false positives at each distinct score, highest score first, and the scores."""
    y = np.asarray(y_true, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise DataError(f"{y.size} true labels but {s.size} scores.")
    if not np.isfinite(s).all():
        raise DataError("Scores for a ROC or precision-recall curve must be finite.")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each distinct score
    tps = np.cumsum(y, dtype=np.float64)[last]
    fps = (last + 1) - tps
    return tps, fps, s[last]


def roc_curve(y_true: ArrayLike, score: ArrayLike) -> tuple[Floats, Floats, Floats]:
    """(fpr, tpr, thresholds) from (0, 0) up, one point per distinct score; thresholds[0] is
    +inf. Undefined (DataError) unless y_true holds both classes."""
    tps, fps, thresholds = _ranked(y_true, score)
    if tps.size == 0 or tps[-1] == 0 or fps[-1] == 0:
        raise DataError("A ROC curve needs both positive and negative rows.")
    return (
        np.r_[0.0, fps / fps[-1]],
        np.r_[0.0, tps / tps[-1]],
        np.r_[np.inf, thresholds],
    )


def precision_recall_curve(y_true: ArrayLike, score: ArrayLike) -> tuple[Floats, Floats, Floats]:
    """(precision, recall, thresholds) in order of increasing recall, starting at (1, 0) as
    scikit-learn ends; precision[i] holds on the recall step (recall[i-1], recall[i]]."""
    tps, fps, thresholds = _ranked(y_true, score)
    if tps.size == 0 or tps[-1] == 0:
        raise DataError("A precision-recall curve needs at least one positive row.")
    return np.r_[1.0, tps / (tps + fps)], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, thresholds]


def trapezoid_area(x: Floats, y: Floats) -> float:
    """Area under a piecewise-linear curve (the ROC AUC for `roc_curve`'s points)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def step_area(precision: Floats, recall: Floats) -> float:
    """sum_n (R_n - R_{n-1}) P_n: average precision for `precision_recall_curve`'s points."""
    return float(np.sum(np.diff(recall) * precision[1:]))


# --------------------------------------------------------------------------- evaluation plots
@dataclass(frozen=True)
class Scores:
    """Checked evaluation arrays, one shape per task.

    binary/multiclass: `y` class indices (n,), `P` probabilities (n, k);
    multilabel: `y` 0/1 (n, t), `P` probabilities (n, t);
    regression: `y` true and `P` predicted values in the original units, (n, t).
    """

    task: str
    y: NDArray[Any]
    P: Floats
    labels: list[str]

    def one_vs_rest(self) -> list[tuple[str, NDArray[np.bool_], Floats]]:
        """(name, positives, score) per curve: the positive class of a binary task, every class
        of a multiclass task (one-vs-rest), every target of a multilabel task."""
        return tasks.get(self.task).one_vs_rest(self.y, self.P, self.labels)


def _scores(task: str, y_true: ArrayLike, outputs: ArrayLike, labels: Sequence[Any]) -> Scores:
    """Accept what `evaluate` holds (class indices or 0/1 targets, the network's probabilities
    with a binary task's single column, or decoded regression values) and check the shapes."""
    names = [str(label) for label in labels]
    y = np.asarray(y_true)
    P = np.asarray(outputs, dtype=np.float64)
    if P.ndim == 1:
        P = P[:, None]
    if y.shape[0] != P.shape[0]:
        raise DataError(f"{y.shape[0]} true values but {P.shape[0]} predictions.")
    if y.shape[0] == 0:
        raise DataError("No rows to plot.")
    if not np.isfinite(P).all():
        raise DataError("Predictions contain NaN or infinite values; nothing can be plotted.")
    spec = tasks.get(task)
    if P.shape[1] == 1:  # binary: the network's single column P(labels[1]) becomes two
        P = spec.probabilities(P)
    y = spec.plot_truth(y, P.shape[1])
    width = P.shape[1]
    if len(names) != width or (y.ndim == 2 and y.shape[-1] != width):
        raise DataError(
            f"{len(names)} label(s) {names} for {width} prediction column(s) and true values "
            f"of shape {y.shape}; they must match."
        )
    return Scores(task, y, P, names)


def _tick_labels(ax: Any, names: list[str]) -> None:
    positions = np.arange(len(names))
    rotate = max((len(n) for n in names), default=0) * len(names) > 40
    ax.set_xticks(
        positions, labels=names, rotation=45 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_yticks(positions, labels=names)


def _heatmap(ax: Any, counts: NDArray[Any], names: list[str]) -> Any:
    """Counts coloured by the fraction of each true class (row), so small classes show."""
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    if len(names) <= 20:
        for (i, j), count in np.ndenumerate(counts):
            ax.text(
                j,
                i,
                f"{count}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize="medium" if len(names) <= 6 else "small",
                color="white" if share[i, j] > 0.55 else "black",
            )
    _tick_labels(ax, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return image


def confusion_figure(scores: Scores) -> Any:
    """Heatmap of true x predicted counts (binary: threshold 0.5, multiclass: argmax)."""
    k = len(scores.labels)
    predicted = (scores.P[:, 1] >= 0.5).astype(np.intp) if k == 2 else scores.P.argmax(axis=1)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (scores.y, predicted), 1)
    side = min(4.0 + 0.45 * k, 14.0)
    figure = _new_figure(side + 1.2, side)
    ax = figure.add_subplot()
    image = _heatmap(ax, counts, scores.labels)
    figure.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.8)
    accuracy = np.trace(counts) / counts.sum()
    ax.set_title(f"Confusion matrix (n = {counts.sum()}, accuracy {accuracy:.3f})")
    return figure


def multilabel_confusion_figure(scores: Scores) -> Any:
    """One 2 x 2 matrix per target (predicted positive when p >= 0.5)."""
    t = len(scores.labels)
    ncols = min(t, 4)
    nrows = math.ceil(t / ncols)
    figure = _new_figure(3.2 * ncols + 0.8, 3.0 * nrows + 0.4)
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False)).ravel()
    for j, name in enumerate(scores.labels):
        truth, pred = scores.y[:, j], (scores.P[:, j] >= 0.5).astype(np.intp)
        counts = np.zeros((2, 2), dtype=np.int64)
        np.add.at(counts, (truth, pred), 1)
        _heatmap(axes[j], counts, ["0", "1"])
        axes[j].set_title(name)
    for ax in axes[t:]:
        ax.set_visible(False)
    figure.suptitle(f"Confusion matrix per target (n = {len(scores.y)})")
    return figure


def _curve_figure(scores: Scores, kind: str) -> Any:
    problems = scores.one_vs_rest()
    crowded = len(problems) > 8  # the legend moves beside the axes
    columns = 1 + len(problems) // 32
    figure = _new_figure(_PANEL[0] + (2.6 * columns if crowded else 0.0), _PANEL[1])
    ax = figure.add_subplot()
    areas: list[float] = []
    for (name, positives, score), color in zip(problems, _colors(len(problems)), strict=True):
        try:
            if kind == "roc":
                fpr, tpr, _ = roc_curve(positives, score)
                area = trapezoid_area(fpr, tpr)
                ax.plot(fpr, tpr, color=color, label=f"{name} (AUC {area:.3f})")
            else:
                precision, recall, _ = precision_recall_curve(positives, score)
                area = step_area(precision, recall)
                ax.step(
                    recall, precision, where="pre", color=color, label=f"{name} (AP {area:.3f})"
                )
                ax.axhline(positives.mean(), color=color, linestyle=":", linewidth=1)
        except DataError:
            ax.plot([], [], color=color, label=f"{name}: undefined (one class only)")
            continue
        areas.append(area)
    one_vs_rest = tasks.get(scores.task).curves_one_vs_rest
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="chance")
        ax.set_xlabel("false positive rate (1 - specificity)")
        ax.set_ylabel("true positive rate (sensitivity)")
        name, short = "ROC curve", "AUC"
    else:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        name, short = "Precision-recall curve", "AP"
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)
    if crowded:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", ncol=columns)
    else:
        ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize="small")
    title = name + (" (one-vs-rest)" if one_vs_rest else "")
    if len(problems) > 1 and areas and len(areas) == len(problems):
        title += f", macro {short} {np.mean(areas):.3f}"
    if kind == "pr":
        title += "\n(dotted: prevalence, a random ranking)"
    ax.set_title(title)
    return figure


def roc_figure(scores: Scores) -> Any:
    """ROC curve of the positive class, or one-vs-rest per class / per target."""
    return _curve_figure(scores, "roc")


def precision_recall_figure(scores: Scores) -> Any:
    """Precision-recall step curve per class or target, with the prevalence for reference."""
    return _curve_figure(scores, "pr")


def _target_grid(scores: Scores, per_row: int) -> tuple[Any, list[Any]]:
    t = len(scores.labels)
    figure = _new_figure(_PANEL[0] * 0.85 * per_row, _PANEL[1] * t)
    axes = figure.subplots(t, per_row, squeeze=False)
    return figure, list(axes)


def _scatter_size(n: int) -> float:
    return float(np.clip(3000.0 / max(n, 1), 2.0, 30.0))


def predicted_vs_true_figure(scores: Scores) -> Any:
    """Predicted against true value per target, with the identity line and R^2."""
    n = len(scores.y)
    t = len(scores.labels)
    ncols = min(t, 3)
    nrows = math.ceil(t / ncols)
    figure = _new_figure(5.0 * ncols, 4.8 * nrows)
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False)).ravel()
    for j, name in enumerate(scores.labels):
        ax, y, p = axes[j], scores.y[:, j], scores.P[:, j]
        ax.scatter(y, p, s=_scatter_size(n), alpha=0.6, color="C0", rasterized=n > 5000)
        low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        pad = 0.03 * (high - low or 1.0)
        ax.plot(
            [low - pad, high + pad],
            [low - pad, high + pad],
            color="0.4",
            linestyle="--",
            linewidth=1,
            label="predicted = true",
        )
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - float(np.sum((y - p) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
        rmse = float(np.sqrt(np.mean((y - p) ** 2)))
        ax.set_title(f"{name}: R² {r2:.3f}, RMSE {rmse:.3g} (n = {n})")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    for ax in axes[t:]:
        ax.set_visible(False)
    return figure


def residuals_figure(scores: Scores) -> Any:
    """Residual (true - predicted) against the prediction, and their histogram, per target:
    a funnel or a curve shows what the model misses."""
    n = len(scores.y)
    figure, rows = _target_grid(scores, 2)
    for j, name in enumerate(scores.labels):
        y, p = scores.y[:, j], scores.P[:, j]
        residual = y - p
        scatter_ax, hist_ax = rows[j]
        scatter_ax.scatter(
            p, residual, s=_scatter_size(n), alpha=0.6, color="C0", rasterized=n > 5000
        )
        scatter_ax.axhline(0.0, color="0.4", linestyle="--", linewidth=1)
        scatter_ax.set_xlabel(f"predicted {name}")
        scatter_ax.set_ylabel("residual (true - predicted)")
        scatter_ax.set_title(f"{name}: residuals (n = {n})")
        hist_ax.hist(residual, bins=int(np.clip(np.sqrt(n), 5, 60)), color="C0", alpha=0.8)
        hist_ax.axvline(0.0, color="0.4", linestyle="--", linewidth=1)
        hist_ax.set_xlabel("residual (true - predicted)")
        hist_ax.set_ylabel("rows")
        hist_ax.set_title(f"{name}: residual mean {residual.mean():.3g}, sd {residual.std():.3g}")
        for ax in (scatter_ax, hist_ax):
            ax.grid(True, alpha=0.3)
    return figure


_CLASSIFICATION: dict[str, Callable[[Scores], Any]] = {
    "confusion_matrix": confusion_figure,
    "roc": roc_figure,
    "precision_recall": precision_recall_figure,
}

#: The evaluation plots of each task kind (`Task.kind`): file stem -> figure function.
_PLOTS_OF_KIND: dict[str, dict[str, Callable[[Scores], Any]]] = {
    "classification": _CLASSIFICATION,
    "multilabel": {**_CLASSIFICATION, "confusion_matrix": multilabel_confusion_figure},
    "regression": {"predicted_vs_true": predicted_vs_true_figure, "residuals": residuals_figure},
}
#: The evaluation plots of each task: file stem -> figure function.
EVALUATION_PLOTS: dict[str, dict[str, Callable[[Scores], Any]]] = {
    name: _PLOTS_OF_KIND[spec.kind] for name, spec in tasks.TASKS.items()
}


def evaluation_figures(
    task: str, y_true: ArrayLike, outputs: ArrayLike, labels: Sequence[Any]
) -> dict[str, Any]:
    """Figures by name for one evaluated table.

    `y_true`: class indices (n,) for binary/multiclass, 0/1 (n, t) for multilabel, true values
    (n,) or (n, t) for regression. `outputs`: the network's probabilities ((n, 1) or (n,) =
    P(labels[1]) for binary, (n, k) multiclass, (n, t) multilabel) or, for regression, the
    predictions in the original units (decode them first). `labels`: the class labels, or the
    target names for multilabel and regression.
    """
    plots = choose("task", task, EVALUATION_PLOTS)
    scores = _scores(task, y_true, outputs, labels)
    return {name: draw(scores) for name, draw in plots.items()}


def evaluation_plot_paths(folder: str | Path, fmt: str) -> list[str]:
    """Every file `evaluate --plots DIR` may write (any task), for the input/output check;
    none while DIR does not exist yet (no input can be in it)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = sorted({name for plots in EVALUATION_PLOTS.values() for name in plots})
    return [str(folder / f"{name}.{fmt}") for name in names]


def evaluation_plots(
    task: str,
    y_true: ArrayLike,
    outputs: ArrayLike,
    labels: Sequence[Any],
    folder: str | Path,
    fmt: str = "png",
    provenance: dict[str, Any] | None = None,
    option: str = "--plots",
) -> list[Path]:
    """`evaluate --plots DIR`: write each evaluation figure as DIR/<name>.<fmt>, atomically.

    Classification: confusion_matrix, roc, precision_recall; regression: predicted_vs_true,
    residuals. The folder is created if needed. Returns the paths written.
    """
    require_matplotlib(option)
    choose("image format", fmt, FORMATS)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} '{folder}' is a file; give a folder name.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{option} '{folder}': cannot create the folder ({exc.strerror})."
        ) from None
    written = []
    for name, figure in evaluation_figures(task, y_true, outputs, labels).items():
        written.append(save_figure(figure, folder / f"{name}.{fmt}", option, provenance))
    return written
