"""Shared fixtures: a seeded generator, the central-difference gradient helpers, a plain
terminal and a CLI runner, tiny tables, and one small model trained once per session, and
model-file comparison."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer.testing
from numpy.typing import NDArray
from typer.testing import CliRunner

Array = NDArray[np.float64]


class PickleMarker:
    """Unpickling this creates a file: proof that a loader executed code from a model file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.path,))


SEED = 20240611
ROOT = Path(__file__).resolve().parents[1]
EXPRESSION = ROOT / "sample_data" / "expression.csv"


def save_and_load(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """What the model file does: JSON for the metadata, npz without pickle for the arrays."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    return json.loads(json.dumps(meta)), loaded


def pytest_configure(config: pytest.Config) -> None:
    """Every command the suite runs (in-process, or as a subprocess that inherits or copies the
    environment) caches tables in a temporary folder, never in the user's cache: set before the
    test modules are imported, so their module-level environments see it too."""
    folder = tempfile.mkdtemp(prefix="mlpcli-test-cache-")
    config.stash[_CACHE_KEY] = (folder, os.environ.get("MLPCLI_CACHE_DIR"))
    os.environ["MLPCLI_CACHE_DIR"] = folder
    # The suite's runs that name no preset train the lecture's MLP (--preset classic): the
    # tests are about the tool, and `auto` would train the recipe too, minutes more. Tests of
    # the default itself unset it (tests/test_auto.py).
    config.stash[_PRESET_KEY] = os.environ.get("MLPCLI_PRESET")
    os.environ["MLPCLI_PRESET"] = "classic"


#: How a test module marks every one of its tests slow.
WHOLLY_SLOW = re.compile(r"^pytestmark = pytest\.mark\.slow\b", re.M)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """`-m "not slow"` does not even import a module marked slow as a whole: several import
    dask, hypothesis or scikit-learn's checks, seconds of collection for every xdist worker."""
    if config.getoption("markexpr") != "not slow" or collection_path.suffix != ".py":
        return None
    return True if WHOLLY_SLOW.search(collection_path.read_text(encoding="utf-8")) else None


def pytest_unconfigure(config: pytest.Config) -> None:
    folder, before = config.stash[_CACHE_KEY]
    shutil.rmtree(folder, ignore_errors=True)
    preset = config.stash[_PRESET_KEY]
    if preset is None:
        os.environ.pop("MLPCLI_PRESET", None)
    else:
        os.environ["MLPCLI_PRESET"] = preset
    if before is None:
        os.environ.pop("MLPCLI_CACHE_DIR", None)
    else:
        os.environ["MLPCLI_CACHE_DIR"] = before


_CACHE_KEY = pytest.StashKey[tuple[str, "str | None"]]()
_PRESET_KEY = pytest.StashKey["str | None"]()


def _command_built_once(app: Any) -> Any:
    """Typer's CliRunner builds the Click command of an app anew on every `invoke`: about 70 ms
    of reading ~200 parameter signatures, most of what a refused command costs, paid by about
    a thousand invocations in the suite. mlpcli's app is built once per process instead, as
    `main()` runs it (`cli.common.command_line`)."""
    from mlpcli.cli import app as mlpcli_app
    from mlpcli.cli.common import command_line

    if app is not mlpcli_app:
        return _typer_get_command(app)
    if _BUILT.get("app") is None:
        _BUILT["app"] = command_line()
    return _BUILT["app"]


_BUILT: dict[str, Any] = {}
_typer_get_command = typer.testing._get_command
typer.testing._get_command = _command_built_once


@pytest.fixture(scope="session", autouse=True)
def table_cache() -> Path:
    """The suite's table cache folder (see `pytest_configure`)."""
    return Path(os.environ["MLPCLI_CACHE_DIR"])


def cache_env() -> dict[str, str]:
    """The suite's cache setting, for subprocesses started with an environment of their own."""
    return {"MLPCLI_CACHE_DIR": os.environ["MLPCLI_CACHE_DIR"]}


@pytest.fixture
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed width, no colour: stable text to match. Modules opt in with
    `pytestmark = pytest.mark.usefixtures("plain_terminal")`."""
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")


@pytest.fixture(scope="session")
def runner() -> CliRunner:
    return CliRunner()


def two_class_table(n: int = 60, seed: int = 4) -> pd.DataFrame:
    """n samples of 10 patients, genes g1..g3, two classes decided by g1 - g2."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    frame = pd.DataFrame(X, columns=["g1", "g2", "g3"])
    frame.insert(0, "sample", [f"S{i:02d}" for i in range(n)])
    frame["patient"] = [f"P{i % 10}" for i in range(n)]
    frame["status"] = np.where(X[:, 0] - X[:, 1] > 0, "case", "control")
    return frame


@pytest.fixture(scope="session")
def cohort_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`two_class_table()` as a CSV file, written once per session."""
    path = tmp_path_factory.mktemp("cohort") / "cohort.csv"
    two_class_table().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch, 8-unit multiclass model on the sample expression table, trained once by the
    CLI for every test that needs some valid model file (copy it before changing it)."""
    from mlpcli.cli import app

    out = tmp_path_factory.mktemp("tiny_model") / "m.npz"
    result = CliRunner().invoke(
        app,
        [
            *("train", str(EXPRESSION), "--target", "subtype", "--id", "sample_id"),
            *("--epochs", "2", "--hidden", "8", "--out", str(out), "-q"),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator per test, so tests do not depend on each other's draws."""
    return np.random.default_rng(SEED)


def _central_difference(f: Callable[[], float], x: Array, eps: float = 1e-6) -> Array:
    """d f / d x by (f(x + eps) - f(x - eps)) / (2 eps), perturbing `x` in place.

    `x` must be the very array `f` reads (a parameter view, an input), float64 so the O(eps^2)
    truncation and O(1e-16 / eps) rounding errors stay far below the 1e-6 the tests demand.
    """
    assert x.dtype == np.float64, "gradient checks run in float64"
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous so the perturbation reaches f"
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        f_plus = f()
        flat[i] = saved - eps
        f_minus = f()
        flat[i] = saved
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def _relative_error(analytic: Array, numeric: Array) -> float:
    """||a - n|| / max(||a|| + ||n||, tiny): scale-free, and 0 when both are exactly zero."""
    diff = float(np.linalg.norm(np.asarray(analytic) - np.asarray(numeric)))
    scale = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
    return diff / max(scale, 1e-300)


@pytest.fixture
def central_difference() -> Callable[..., Array]:
    return _central_difference


@pytest.fixture
def relative_error() -> Callable[[Array, Array], float]:
    return _relative_error


def without_timings(meta: Any) -> Any:
    """Metadata without what changes from run to run: times and the command line."""
    if isinstance(meta, dict):
        return {k: without_timings(v) for k, v in meta.items() if k not in ("seconds", "command")}
    if isinstance(meta, list):
        return [without_timings(v) for v in meta]
    return meta


def assert_same_model(a: Path, b: Path) -> None:
    """Every array byte for byte, and the metadata but for timings and the command line."""
    from mlpcli import modelfile

    (meta_a, arrays_a), (meta_b, arrays_b) = modelfile.load(a), modelfile.load(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, name
        assert arrays_a[name].tobytes() == arrays_b[name].tobytes(), name
    assert without_timings(meta_a) == without_timings(meta_b)


def assert_documents_close(streamed: Any, whole: Any, path: str = "") -> None:
    """Equal metric documents (nested dicts): counts, texts, accuracies and ROC AUC exactly,
    other floats to 1e-12 (the order of float64 additions differs between streamed and
    in-memory metrics)."""
    if isinstance(whole, dict):
        assert streamed.keys() == whole.keys(), path
        for key in whole:
            assert_documents_close(streamed[key], whole[key], f"{path}.{key}")
    elif isinstance(whole, float) and not path.endswith(("roc_auc", "accuracy")):
        assert streamed == pytest.approx(whole, rel=1e-12, abs=1e-15), path
    else:
        assert streamed == whole, path
