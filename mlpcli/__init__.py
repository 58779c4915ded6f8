"""mlpcli: train multilayer perceptrons on tabular data, with a pure NumPy core.

The public Python API is loaded lazily, so the command line starts without importing NumPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__version__ = "0.1.0"
#: The distribution's name (pyproject `name`): not "mlpcli", which on the public package index is
#: an unrelated project.
DISTRIBUTION = "mlpcli-tabular"

__all__ = ["MLP", "__version__", "load"]


def load(path: str | Path) -> Any:
    """A fitted scikit-learn estimator (`mlpcli.sklearn.MLPClassifier` or `MLPRegressor`) from
    any model file, also one written by `mlpcli train`; needs the `sklearn` extra."""
    from mlpcli.sklearn import load as load_estimator

    return load_estimator(path)


def __getattr__(name: str) -> Any:
    if name == "MLP":
        from mlpcli.nn.network import MLP

        return MLP
    raise AttributeError(f"module 'mlpcli' has no attribute {name!r}")
