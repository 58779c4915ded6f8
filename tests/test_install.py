"""The install: a wheel with complete metadata that installs into a fresh venv, and no text that
tells anyone to install `mlpcli` by name from the public index (an unrelated project owns it)."""

from __future__ import annotations

import email.parser
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import mlpcli
from mlpcli.errors import EXTRAS, install_hint

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: Built from pieces so that this file does not match itself.
_NAME = "mlp" + "cli"
#: pip install of the bare name, with options, quotes, an extra or a version.
BY_NAME = re.compile(
    r"pip3?\s+install\s+(?:-{1,2}[\w-]+(?:=\S+)?\s+)*[\"']?" + _NAME + r"(?![\w./-])"
)
#: The name followed by an extra, anywhere (also rich-escaped, as in help texts).
WITH_EXTRA = re.compile(r"(?<![\w./-])" + _NAME + r"\\?\[")
TEXT_SUFFIXES = {".md", ".py", ".toml", ".txt", ".yaml", ".yml", ".cfg", ".sh", ""}


def _texts() -> list[Path]:
    skip = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache"}
    files = []
    for path in ROOT.rglob("*"):
        if any(part in skip or part.endswith(".egg-info") for part in path.parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path.stat().st_size < 2_000_000:
            files.append(path)
    return files


def test_the_patterns_catch_what_they_must() -> None:
    for bad in [
        "pip install " + _NAME,
        f'pip install -U "{_NAME}[plot]"',
        f"pip install {_NAME}>=1",
    ]:
        assert BY_NAME.search(bad) or WITH_EXTRA.search(bad), bad
    for good in ['pip install ".[plot]"', "pip install .", "pip install mlpcli-tabular-x.whl"]:
        assert not (BY_NAME.search(good) or WITH_EXTRA.search(good)), good


def test_no_text_installs_mlpcli_by_name_from_the_index() -> None:
    found = []
    for path in _texts():
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in (BY_NAME, WITH_EXTRA):
            found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not found, found


def test_distribution_name_differs_from_the_import_package_and_command() -> None:
    project = PYPROJECT["project"]
    assert project["name"] != _NAME
    assert project["name"] == mlpcli.DISTRIBUTION  # what dask workers' versions are read from
    assert project["scripts"] == {_NAME: "mlpcli.cli:main"}


def test_install_hints_name_real_extras() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra in EXTRAS:
        assert extra in extras
        assert f'pip install ".[{extra}]"' in install_hint(extra)


def _readme_wheel_command() -> list[str]:
    block = re.search(r"## Install\n.*?```bash\n(.*?)```", README, re.S)
    assert block, "README needs an Install section with a bash block"
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    wheel = [line for line in lines if line.startswith("pip wheel")]
    assert len(wheel) == 1, lines
    return shlex.split(wheel[0])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built by README's own command (with the output folder moved to tmp)."""
    argv = _readme_wheel_command()
    assert argv[:2] == ["pip", "wheel"]
    out = tmp_path_factory.mktemp("wheel")
    argv[argv.index("-w") + 1] = str(out)
    done = subprocess.run(
        [sys.executable, "-m", "pip", *argv[1:]],  # README's `pip`, as this interpreter's
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("*.whl")
    return built


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


@pytest.mark.slow
def test_wheel_metadata_is_complete(wheel: Path) -> None:
    meta = _metadata(wheel)
    project = PYPROJECT["project"]
    assert meta["Name"] == project["name"]
    assert meta["Version"] == mlpcli.__version__
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in meta.get_all("License-File", [])
    assert meta["Summary"] and meta["Description-Content-Type"] == "text/markdown"
    assert set(meta.get_all("Provides-Extra", [])) == set(project["optional-dependencies"])
    assert sorted(meta.get_all("Classifier", [])) == sorted(project["classifiers"])
    requires = meta.get_all("Requires-Dist", [])
    assert any(r.startswith("numpy") for r in requires)
    assert any(r.startswith("matplotlib") and "extra == 'plot'" in r for r in requires)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "mlpcli = mlpcli.cli:main" in archive.read(entry).decode()
        assert "mlpcli/py.typed" in names
        assert not [n for n in names if n.startswith(("tests/", "bench/"))]


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs(wheel: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # This interpreter's pip installs into the fresh venv (with the wheel's dependencies).
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    version = subprocess.run(
        [str(venv / "bin" / "mlpcli"), "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"mlpcli {mlpcli.__version__}"
    where = subprocess.run(
        [str(python), "-c", "import mlpcli; print(mlpcli.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,  # a fresh venv: nothing from this process's PYTHONPATH
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
