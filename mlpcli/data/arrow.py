"""The optional pyarrow fast paths of reading and writing text tables, behind one switch.

pyarrow (the `parquet` extra) parses CSV on every core without the GIL and formats numbers in
C++; where it is installed, `data.read`, `data.chunks` and `data.write` use it for the tables it
is known to give the same frame or the same bytes for, and the plain pandas/NumPy path for the
rest (tests compare the two on tricky tables). `MLPCLI_ARROW=0` in the environment, or
`USE_ARROW = False`, turns the fast paths off.
"""

from __future__ import annotations

import os
from types import ModuleType

#: Whether the fast paths may be used (when pyarrow imports).
USE_ARROW: bool = os.environ.get("MLPCLI_ARROW", "1") != "0"

_modules: tuple[ModuleType, ModuleType, ModuleType] | None = None
_missing = False


def modules() -> tuple[ModuleType, ModuleType, ModuleType] | None:
    """(pyarrow, pyarrow.compute, pyarrow.csv), or None when switched off or not installed."""
    global _modules, _missing
    if not USE_ARROW or _missing:
        return None
    if _modules is None:
        try:
            import pyarrow
            import pyarrow.compute
            import pyarrow.csv
        except ImportError:
            _missing = True
            return None
        _modules = (pyarrow, pyarrow.compute, pyarrow.csv)
    return _modules
