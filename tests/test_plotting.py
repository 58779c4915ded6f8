"""Plots: curve points against hand-computed values and the metrics module, every plot type
rendered to a real, non-empty image, provenance in the image metadata, and a clear message
when matplotlib is missing."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mlpcli import metrics, plotting
from mlpcli.errors import DataError, ModelFileError, UsageError

pytest.importorskip("matplotlib", reason='plots need matplotlib: pip install ".[plot]"')

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- image checks
def png_chunks(path: Path) -> dict[str, list[bytes]]:
    """Every chunk of a PNG file by type, after checking the signature and each CRC."""
    raw = path.read_bytes()
    assert raw[:8] == PNG_SIGNATURE
    chunks: dict[str, list[bytes]] = {}
    pos = 8
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        kind = raw[pos + 4 : pos + 8]
        body = raw[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", raw[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        chunks.setdefault(kind.decode("ascii"), []).append(body)
        pos += 12 + length
    assert "IEND" in chunks
    return chunks


def png_text(path: Path) -> dict[str, str]:
    out = {}
    for body in png_chunks(path).get("tEXt", []):
        key, _, value = body.partition(b"\0")
        out[key.decode("latin-1")] = value.decode("latin-1")
    return out


def check_png(path: Path) -> None:
    """A valid PNG with a plausible size whose pixels are not all one colour."""
    from matplotlib.image import imread

    width, height = struct.unpack(">II", png_chunks(path)["IHDR"][0][:8])
    assert 200 <= width <= 4000 and 200 <= height <= 4000, (width, height)
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert float(pixels[..., :3].var()) > 0.0, "the image is blank"


def check_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    drawn = [e for e in root.iter() if e.tag.endswith(("path", "use", "text", "image"))]
    assert len(drawn) > 20, "the SVG draws almost nothing"


def check_pdf(path: Path) -> None:
    raw = path.read_bytes()
    assert raw.startswith(b"%PDF-1.")
    assert raw.rstrip().endswith(b"%%EOF")
    assert b"/Type /Page" in raw
    assert len(raw) > 5_000


CHECKS = {"png": check_png, "svg": check_svg, "pdf": check_pdf}


def embedded_provenance(path: Path) -> dict[str, Any]:
    """The JSON provenance each format carries in its metadata field."""
    fmt = path.suffix[1:]
    if fmt == "png":
        return json.loads(png_text(path)["Description"])
    if fmt == "svg":
        found = ET.parse(path).getroot().find(".//{http://purl.org/dc/elements/1.1/}description")
        assert found is not None
        return json.loads(found.text or "")
    raw = path.read_bytes().decode("latin-1")
    match = re.search(r"/Subject \(((?:[^()\\]|\\.)*)\)", raw)  # a PDF string, \-escaped
    assert match is not None
    return json.loads(re.sub(r"\\(.)", r"\1", match.group(1)))


# --------------------------------------------------------------------------- data
def history_metadata(epochs: int = 12, validation: bool = True) -> dict[str, Any]:
    """Metadata shaped as `train` stores it, with a step schedule and clipping."""
    history = []
    for e in range(1, epochs + 1):
        history.append(
            {
                "epoch": e,
                "train_loss": 1.5 * 0.7**e,
                "val_loss": (0.9 * 0.8**e + 0.02 * max(0, e - 8)) if validation else None,
                "val_metric": min(0.95, 0.4 + 0.06 * e) if validation else None,
                "lr": 0.01 * 0.1 ** (e // 5),
                "grad_norms": [2.0 * 0.8**e, 1.0 * 0.85**e, 0.0 if e == 3 else 0.5 * 0.9**e],
                "seconds": 0.01,
                "improved": e <= 8,
                "best_epoch": min(e, 8),
            }
        )
    return {
        "task": "multiclass",
        "architecture": {"loss": "ce"},
        "layer_names": ["layer1", "layer2", "output"],
        "settings": {"train": {"schedule": "step", "clip_norm": 5.0}},
        "training": {
            "history": history,
            "best_epoch": 8,
            "best_value": history[7]["val_loss"] if validation else history[7]["train_loss"],
            "monitor": "val_loss" if validation else "train_loss",
            "epochs_run": epochs,
            "stop_reason": "epoch_limit",
        },
    }


def evaluation_inputs(task: str, rng: np.random.Generator) -> tuple[Any, Any, list[str]]:
    """Believable y_true / outputs / labels for each task, in the shapes `evaluate` holds."""
    n = 150
    if task == "binary":
        y = rng.integers(0, 2, n)
        return y, np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)[:, None], ["healthy", "tumour"]
    if task == "multiclass":
        y = rng.integers(0, 3, n)
        logits = 2.0 * np.eye(3)[y] + rng.normal(size=(n, 3))
        P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return y, P, ["basal", "her2", "luminal"]
    if task == "multilabel":
        Y = rng.integers(0, 2, (n, 3))
        return Y, np.clip(0.4 * Y + 0.6 * rng.random((n, 3)), 0, 1), ["a", "b", "c"]
    values = rng.normal(2.0, 1.5, (n, 1))
    return values, values + rng.normal(0, 0.5, (n, 1)), ["ic50"]


# --------------------------------------------------------------------------- curve points
def test_roc_curve_by_hand() -> None:
    # scikit-learn's documented example: scores 0.8 > 0.4 > 0.35 > 0.1 for labels 1, 0, 1, 0
    fpr, tpr, thresholds = plotting.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])
    assert plotting.trapezoid_area(fpr, tpr) == pytest.approx(0.75)


def test_precision_recall_curve_by_hand() -> None:
    precision, recall, _ = plotting.precision_recall_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    # thresholds 0.8, 0.4, 0.35, 0.1 keep 1, 2, 3, 4 rows of which 1, 1, 2, 2 are positive
    np.testing.assert_allclose(precision, [1, 1, 1 / 2, 2 / 3, 2 / 4])
    np.testing.assert_allclose(recall, [0, 0.5, 0.5, 1, 1])
    assert plotting.step_area(precision, recall) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_tied_scores_make_one_diagonal_step() -> None:
    fpr, tpr, _ = plotting.roc_curve([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(fpr, [0, 1])
    np.testing.assert_allclose(tpr, [0, 1])
    assert plotting.trapezoid_area(fpr, tpr) == pytest.approx(0.5)


def test_curve_areas_match_the_metrics_module(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 400)
    score = np.round((0.3 * y + rng.random(400)) / 1.3, 2)  # rounding makes ties
    fpr, tpr, _ = plotting.roc_curve(y, score)
    precision, recall, _ = plotting.precision_recall_curve(y, score)
    assert plotting.trapezoid_area(fpr, tpr) == pytest.approx(metrics.roc_auc(y, score))
    assert plotting.step_area(precision, recall) == pytest.approx(
        metrics.average_precision(y, score)
    )


def test_curves_need_both_classes() -> None:
    with pytest.raises(DataError, match="both positive and negative"):
        plotting.roc_curve([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(DataError, match="at least one positive"):
        plotting.precision_recall_curve([0, 0], [0.2, 0.5])


# --------------------------------------------------------------------------- rendering
@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(plotting.FORMATS))
def test_training_plot_in_every_format(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"curves.{fmt}"
    provenance = {"command": ["mlpcli", "plot", "m.npz"], "seed": 3}
    written = plotting.plot_training(history_metadata(), out, "m.npz", provenance)
    assert written == out
    CHECKS[fmt](out)
    assert embedded_provenance(out) == provenance
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


@pytest.mark.slow
def test_training_plot_without_validation_rows(tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    plotting.plot_training(history_metadata(validation=False), out)
    check_png(out)


@pytest.mark.slow
def test_svg_and_pdf_are_reproducible(tmp_path: Path) -> None:
    """No timestamps: the same model gives byte-identical files, so Make sees no change."""
    for fmt in ("svg", "pdf"):
        a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
        plotting.plot_training(history_metadata(), a)
        plotting.plot_training(history_metadata(), b)
        assert a.read_bytes() == b.read_bytes(), fmt


def test_empty_history_is_a_model_file_error(tmp_path: Path) -> None:
    meta = history_metadata()
    meta["training"]["history"] = []
    with pytest.raises(ModelFileError, match="no training history"):
        plotting.plot_training(meta, tmp_path / "c.png")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["curves.jpg", "curves"])
def test_unknown_image_format(name: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown image format .*\.png, \.svg, \.pdf"):
        plotting.plot_training(history_metadata(), tmp_path / name)


@pytest.mark.slow  # matplotlib draws every plot of every task
@pytest.mark.parametrize("task", sorted(plotting.EVALUATION_PLOTS))
def test_evaluation_plots_for_each_task(
    task: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    y, outputs, labels = evaluation_inputs(task, rng)
    folder = tmp_path / "plots" / "nested"  # created on demand
    written = plotting.evaluation_plots(task, y, outputs, labels, folder, provenance={"seed": 1})
    assert [p.name for p in written] == [f"{n}.png" for n in plotting.EVALUATION_PLOTS[task]]
    for path in written:
        check_png(path)
        assert embedded_provenance(path) == {"seed": 1}


@pytest.mark.slow
def test_evaluation_plots_as_svg(tmp_path: Path, rng: np.random.Generator) -> None:
    y, outputs, labels = evaluation_inputs("regression", rng)
    for path in plotting.evaluation_plots("regression", y, outputs, labels, tmp_path, fmt="svg"):
        check_svg(path)


def test_one_class_still_draws_with_the_curve_marked_undefined(tmp_path: Path) -> None:
    y = np.array([0, 0, 0, 2, 2, 2])  # 'her2' (class 1) never occurs
    P = np.full((6, 3), 1 / 3)
    P[:, 0] -= np.linspace(-0.1, 0.1, 6)  # basal ranks the basal rows first
    P[:, 2] += np.linspace(-0.1, 0.1, 6)
    figure = plotting.evaluation_figures("multiclass", y, P, ["basal", "her2", "luminal"])["roc"]
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "her2: undefined (one class only)" in labels
    assert "basal (AUC 1.000)" in labels


def test_binary_outputs_in_any_shape_give_the_same_picture(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 50)
    p = rng.random(50)
    areas = set()
    for outputs in (p, p[:, None], np.column_stack([1 - p, p])):
        figure = plotting.evaluation_figures("binary", y, outputs, ["no", "yes"])["roc"]
        areas.add(tuple(figure.axes[0].get_legend_handles_labels()[1]))
    assert len(areas) == 1


def test_evaluation_input_errors(rng: np.random.Generator, tmp_path: Path) -> None:
    y, outputs, labels = evaluation_inputs("multiclass", rng)
    with pytest.raises(UsageError, match="Unknown task 'ordinal'; choose one of: binary"):
        plotting.evaluation_figures("ordinal", y, outputs, labels)
    with pytest.raises(DataError, match="2 label"):
        plotting.evaluation_figures("multiclass", y, outputs, labels[:2])
    with pytest.raises(DataError, match="150 true values but 149 predictions"):
        plotting.evaluation_figures("multiclass", y, outputs[:-1], labels)
    with pytest.raises(UsageError, match="Unknown image format 'jpg'; choose one of: pdf, png"):
        plotting.evaluation_plots("multiclass", y, outputs, labels, tmp_path, fmt="jpg")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file; give a folder name"):
        plotting.evaluation_plots("multiclass", y, outputs, labels, tmp_path / "file")


# --------------------------------------------------------------------------- without matplotlib
def test_missing_matplotlib_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    message = (
        r'needs matplotlib, which is not installed: pip install "\.\[plot\]" in the mlpcli '
        "checkout"
    )
    with pytest.raises(UsageError, match=message):
        plotting.plot_training(history_metadata(), tmp_path / "c.png")
    with pytest.raises(UsageError, match="--plots " + message):
        plotting.evaluation_plots("binary", [0, 1], [0.2, 0.7], ["a", "b"], tmp_path)

    from mlpcli.cli import app

    result = CliRunner().invoke(app, ["plot", "missing.npz", "--out", str(tmp_path / "c.png")])
    assert result.exit_code == 2
    assert 'mlpcli plot needs matplotlib, which is not installed: pip install ".[plot]"' in (
        result.output
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_importing_the_cli_does_not_import_matplotlib() -> None:
    code = (
        "import sys, mlpcli.cli, mlpcli.plotting, mlpcli.report; print('matplotlib' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlpcli.cli import app

    out = tmp_path_factory.mktemp("model") / "model.npz"
    args = ["train", str(REPO / "sample_data" / "expression.csv"), "--target", "subtype"]
    args += ["--id", "sample_id", "--epochs", "6", "--seed", "5", "--out", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_plot_command_writes_the_curves_with_provenance(model_file: Path, tmp_path: Path) -> None:
    from mlpcli import __version__
    from mlpcli.cli import app

    out = tmp_path / "curves.png"
    result = CliRunner().invoke(app, ["plot", str(model_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    check_png(out)
    provenance = embedded_provenance(out)
    assert provenance["mlpcli_version"] == __version__
    assert provenance["numpy_version"] == np.__version__
    assert provenance["seed"] == 5
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert provenance["inputs"] == [{"path": str(model_file), "sha256": digest}]
    assert isinstance(provenance["command"], list)


def test_plot_command_errors(model_file: Path, tmp_path: Path) -> None:
    from mlpcli.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["plot", str(model_file), "--out", str(tmp_path / "c.gif")])
    assert result.exit_code == 2
    assert "unknown image format 'gif'" in result.output
    result = runner.invoke(
        app, ["plot", str(tmp_path / "no.npz"), "--out", str(tmp_path / "c.png")]
    )
    assert result.exit_code == 4
    assert "does not exist" in result.output
    assert not list(tmp_path.iterdir())
