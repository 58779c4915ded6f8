"""The HTML model card: self-contained (nothing fetched), every text escaped, the numbers it
shows match a recomputation, provenance embedded, and it renders in headless Chromium."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpcli import report, trained
from mlpcli.errors import DataError

pytest.importorskip("matplotlib", reason='reports need matplotlib: pip install ".[plot]"')

REPO = Path(__file__).resolve().parents[1]
EVIL_COLUMN = "<img src=x onerror=alert(1)>"
EVIL_LEVEL = "<b>bold</b>"
LABELS = ("a<b", 'c&d "q"')
SECTIONS = ["data", "preprocessing", "architecture", "training", "curves", "metrics"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tricky_table(n: int, seed: int) -> pd.DataFrame:
    """A binary table whose column name, category level and labels are HTML."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    status = np.where(x[:, 0] + 0.5 * x[:, 1] + 0.5 * rng.normal(size=n) > 0, *LABELS)
    return pd.DataFrame(
        {
            "sample": [f"S{seed}_{i}" for i in range(n)],
            EVIL_COLUMN: x[:, 0],
            "g2": x[:, 1],
            "g3": x[:, 2],
            "tissue": rng.choice([EVIL_LEVEL, "lung"], n),
            "status": status,
        }
    )


def train(args: list[str]) -> None:
    from mlpcli.cli import app

    result = CliRunner().invoke(app, ["train", *args, "--seed", "3", "-q"])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """task -> (model file, held-out table with one missing target)."""
    folder = tmp_path_factory.mktemp("report")
    tricky_table(160, 1).to_csv(folder / "train.csv", index=False)
    test = tricky_table(40, 2).astype({"status": object})
    test.loc[3, "status"] = None
    test.to_csv(folder / "test.csv", index=False)
    train(
        [
            str(folder / "train.csv"),
            "--target",
            "status",
            "--id",
            "sample",
            "--epochs",
            "15",
            "--out",
            str(folder / "binary.npz"),
        ]
    )

    drug = pd.read_csv(REPO / "sample_data" / "drug_response.csv")
    drug.iloc[:400].to_csv(folder / "drug_train.csv", index=False)
    drug.iloc[400:].to_csv(folder / "drug_test.csv", index=False)  # 2 of these lack ic50
    train(
        [
            str(folder / "drug_train.csv"),
            "--target",
            "ic50",
            "--id",
            "cell_line",
            "--hidden",
            "16",
            "--epochs",
            "10",
            "--out",
            str(folder / "regression.npz"),
        ]
    )
    return {
        "binary": (folder / "binary.npz", folder / "test.csv"),
        "regression": (folder / "regression.npz", folder / "drug_test.csv"),
    }


class Page(HTMLParser):
    """Every start tag with its attributes, the text of <style> and of <script> elements."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self.scripts: list[str] = []
        self.ids: list[str] = []
        self._in: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if "id" in dict(attrs):
            self.ids.append(str(dict(attrs)["id"]))
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.styles.append(data)
        elif self._in == "script":
            self.scripts.append(data)


@pytest.mark.slow
def test_train_and_test_tables_are_as_intended(models: dict[str, tuple[Path, Path]]) -> None:
    model = trained.load_trained(models["binary"][0])
    assert model.task == "binary"
    assert model.encoder.labels == sorted(LABELS)
    assert EVIL_COLUMN in model.metadata["feature_columns"]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_report_is_self_contained(
    task: str, models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    model, test = models[task]
    out = tmp_path / "report.html"
    assert report.write_report(str(model), str(out), str(test)) == out
    page = Page(out.read_text(encoding="utf-8"))
    tags = [tag for tag, _ in page.tags]
    assert not {"link", "iframe", "object", "embed", "base", "frame"} & set(tags)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    expected = 1 + (3 if task == "binary" else 2)  # training curves + the evaluation plots
    assert len(images) == expected
    for attrs in images:
        src = str(attrs["src"])
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_SIGNATURE)
        assert attrs["alt"]
    for tag, attrs in page.tags:
        assert "src" not in attrs or tag == "img"
        assert str(attrs.get("href", "#")).startswith("#"), attrs  # links stay in the page
        assert tag != "script" or attrs == {"type": "application/json", "id": "mlpcli-provenance"}
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
    css = "".join(page.styles)
    assert css and "url(" not in css and "@import" not in css
    assert page.ids[: len(SECTIONS)] == SECTIONS
    assert page.ids[len(SECTIONS) :] == ["test", "provenance", "mlpcli-provenance"]


@pytest.mark.slow
def test_report_escapes_every_text(models: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    model, test = models["binary"]
    out = tmp_path / "report.html"
    nasty = "</script><script>alert(1)</script>"
    report.write_report(str(model), str(out), str(test), command=["mlpcli", "report", nasty])
    text = out.read_text(encoding="utf-8")
    for raw in (EVIL_COLUMN, EVIL_LEVEL, nasty, "a<b", 'c&d "q"'):
        assert raw not in text, raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "a&lt;b" in text and "c&amp;d &quot;q&quot;" in text
    page = Page(text)
    assert [tag for tag, _ in page.tags].count("script") == 1
    embedded = json.loads(page.scripts[0])
    assert embedded["report"]["command"] == ["mlpcli", "report", nasty]


@pytest.mark.slow
def test_report_numbers_and_provenance(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    model_path, test_path = models["binary"]
    model = trained.load_trained(model_path)
    evaluation = report.evaluate_table(str(model_path), str(test_path))
    assert (evaluation.n_rows, evaluation.n_dropped) == (39, 1)

    frame = pd.read_csv(test_path).dropna(subset=["status"])
    p_positive = model.predict_outputs(frame)[:, 0]
    predicted = np.where(p_positive >= 0.5, model.encoder.labels[1], model.encoder.labels[0])
    accuracy = float(np.mean(predicted == frame["status"].to_numpy()))
    assert evaluation.report["accuracy"] == pytest.approx(accuracy)

    out = tmp_path / "report.html"
    report.write_report(str(model_path), str(out), str(test_path))
    text = out.read_text(encoding="utf-8")
    assert f"{accuracy:.4g}" in text
    meta = model.metadata
    assert f"<td>{meta['training']['n_train']}</td>" in text
    embedded = json.loads(Page(text).scripts[0])
    assert embedded["training"] == meta["provenance"]
    sha = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (model_path, test_path)}
    assert embedded["report"]["inputs"] == [
        {"path": str(p), "sha256": digest} for p, digest in sha.items()
    ]
    assert embedded["report"]["seed"] == 3
    for digest in [*sha.values(), meta["provenance"]["inputs"][0]["sha256"]]:
        assert digest in text


@pytest.mark.slow
def test_report_without_data_has_no_test_section(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    report.write_report(str(models["regression"][0]), str(out))
    page = Page(out.read_text(encoding="utf-8"))
    assert "test" not in page.ids
    assert [tag for tag, _ in page.tags].count("img") == 1
    headers = [
        attrs for tag, attrs in page.tags if tag == "table" and attrs.get("class") == "metrics"
    ]
    assert len(headers) == 1


@pytest.mark.slow
def test_report_command(models: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    from mlpcli.cli import app

    model, test = models["regression"]
    out = tmp_path / "card.html"
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(model), "--data", str(test), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    no_target = tmp_path / "no_target.csv"
    pd.read_csv(test).drop(columns="ic50").to_csv(no_target, index=False)
    bad = tmp_path / "bad.html"
    result = runner.invoke(app, ["report", str(model), "--data", str(no_target), "--out", str(bad)])
    assert result.exit_code == 3
    assert "lacks 1 target column(s) the model needs: 'ic50'" in result.output
    assert not bad.exists()


@pytest.mark.slow
def test_missing_target_column_is_a_data_error(models: dict[str, tuple[Path, Path]]) -> None:
    with pytest.raises(DataError, match="status"):
        report.evaluate_table(
            str(models["binary"][0]), str(REPO / "sample_data" / "expression.csv")
        )


CHROMIUM = shutil.which("chromium")


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian: apt-get install chromium; .ci/run does)",
)
@pytest.mark.slow
def test_report_renders_in_headless_chromium(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    from matplotlib.image import imread

    model, test = models["binary"]
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    report.write_report(str(model), str(page), str(test))
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,3200",  # tall enough to reach the training curves
        page.as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    pixels: Any = imread(shot)
    assert pixels.shape[:2] == (3200, 1200)
    rgb = pixels[..., :3]
    assert float(rgb.var()) > 0.0, "the screenshot is blank"
    ink = float((rgb.min(axis=2) < 0.9).mean())
    assert ink > 0.02, f"only {ink:.1%} of the screenshot is drawn"
    # matplotlib's orange (#ff7f0e), the validation curve: the embedded image was decoded
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    orange = int(((r > 0.9) & (g > 0.4) & (g < 0.6) & (b < 0.2)).sum())
    assert orange > 100, "the training-curves image is not displayed"


def _section_text(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    body = page[start : page.index("</section>", start)]
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_report_shows_resolved_settings_and_only_those_that_apply(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rule as `inspect` (modelfile.settings_not_taken): with sgd and a step schedule
    the report lists the step options, not plateau's or adam's, and the `auto` values as the run
    resolved them."""
    from mlpcli import modelfile

    monkeypatch.setattr(report, "_curves_section", lambda meta, title: "")  # not read here

    meta = modelfile.read_metadata(tiny_model)
    page = report.render(meta, "m", {})
    optimizer, training = _section_text(page, "training").split("every training setting")
    assert "beta1 0.9" in optimizer
    assert "batch_size 32 (auto)" in training and "lr 0.001 (default)" in training
    assert "init he_normal, glorot_uniform (auto)" in _section_text(page, "architecture")
    assert "loss ce (auto)" in _section_text(page, "architecture")
    for name in ("lr_step_size", "lr_gamma", "lr_factor", "lr_patience", "momentum", "beta1"):
        assert name not in training  # constant schedule; adam's own are in the Optimizer list

    train = {**meta["settings"]["train"], "optimizer": "sgd", "schedule": "step"}
    changed = {**meta, "settings": {**meta["settings"], "train": train}}
    changed["optimizer"] = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    optimizer, training = _section_text(report.render(changed, "m", {}), "training").split(
        "every training setting"
    )
    assert "momentum 0.9" in optimizer
    assert "lr_step_size" in training and "lr_gamma" in training
    assert "lr_factor" not in training and "lr_patience" not in training
    assert "beta1" not in training and "momentum" not in training
