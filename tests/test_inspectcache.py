"""The kept text of `mlpcli inspect MODEL` (cli/inspectcache.py): which command lines it answers,
and that a kept file is used only for the same model bytes, code and terminal, never trusted
when damaged. The byte-for-byte comparison with the rendering path, in fresh processes, is in
tests/test_startup.py."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlpcli.cli import inspectcache


@pytest.mark.parametrize(
    ("argv", "form"),
    [
        (["inspect", "m.npz"], ("m.npz", False)),
        (["inspect", "m.npz", "--json"], ("m.npz", True)),
        (["inspect", "--json", "m.npz"], ("m.npz", True)),
        (["inspect", "m.npz", "--rows", "5"], None),
        (["inspect", "--rows=5", "m.npz"], None),
        (["inspect", "m.npz", "--help"], None),
        (["inspect", "-"], None),
        (["inspect"], None),
        (["predict", "m.npz"], None),
        (["--quiet", "inspect", "m.npz"], None),
    ],
)
def test_only_the_plain_forms_take_the_kept_path(
    argv: list[str], form: tuple[str, bool] | None
) -> None:
    assert inspectcache.request(argv) == form


@pytest.fixture
def kept_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> Path:
    monkeypatch.setenv("MLPCLI_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "m.npz"
    model.write_bytes(tiny_model.read_bytes())
    name = inspectcache.key(str(model), False, inspectcache.DEFAULT_ROWS)
    inspectcache.keep(name, str(model), False, 20, "the text\n", {"os": True})
    return model


def test_kept_text_comes_back_for_the_same_file(kept_model: Path) -> None:
    assert inspectcache.kept(str(kept_model), False) == "the text\n"
    assert inspectcache.kept(str(kept_model), True) is None  # --json is another text


def test_changed_bytes_or_another_name_render_again(kept_model: Path) -> None:
    kept_model.write_bytes(kept_model.read_bytes() + b"\0")
    assert inspectcache.kept(str(kept_model), False) is None
    assert inspectcache.kept(f"./{kept_model.name}", False) is None  # "model" shows the name


def test_the_terminal_is_part_of_the_key(kept_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "57")
    assert inspectcache.kept(str(kept_model), False) is None


def test_an_exporter_installed_or_removed_since_renders_again(
    kept_model: Path, tmp_path: Path
) -> None:
    (path,) = (tmp_path / "cache" / inspectcache.FOLDER).glob("*.json")
    record = json.loads(path.read_text())
    record["modules"] = {"os": False}
    path.write_text(json.dumps(record))
    assert inspectcache.kept(str(kept_model), False) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: b"not json",
        lambda r: json.dumps([r]).encode(),
        lambda r: json.dumps({**r, "text": "forged\n"}).encode(),  # fails its digest
        lambda r: json.dumps({**r, "key": "0" * 64}).encode(),
        lambda r: json.dumps({**r, "modules": None}).encode(),
    ],
    ids=["not-json", "a-list", "forged-text", "other-key", "no-modules"],
)
def test_a_damaged_kept_file_is_not_trusted(
    kept_model: Path, tmp_path: Path, damage: Callable[[dict[str, Any]], bytes]
) -> None:
    (path,) = (tmp_path / "cache" / inspectcache.FOLDER).glob("*.json")
    path.write_bytes(damage(json.loads(path.read_text())))
    assert inspectcache.kept(str(kept_model), False) is None


def test_only_the_newest_texts_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    monkeypatch.setenv("MLPCLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(inspectcache, "KEEP", 3)
    model = tmp_path / "m.npz"
    model.write_bytes(tiny_model.read_bytes())
    for rows in range(5):
        name = inspectcache.key(str(model), False, rows)
        inspectcache.keep(name, str(model), False, rows, f"{rows}\n", {})
    assert len(os.listdir(tmp_path / "cache" / inspectcache.FOLDER)) == 3


def test_a_missing_model_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPCLI_CACHE_DIR", str(tmp_path / "cache"))
    assert inspectcache.key(str(tmp_path / "none.npz"), False, 20) is None
    assert inspectcache.kept(str(tmp_path / "none.npz"), False) is None
