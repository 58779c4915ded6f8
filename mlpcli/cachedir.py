"""Where mlpcli keeps what it can always rebuild: the table cache (`data/cache.py`) and the kept
output of `inspect` (`cli/inspectcache.py`). Standard library only (`os.path`, not pathlib), so
`inspect`'s fast path finds it without importing NumPy."""

from __future__ import annotations

import os

ENV = "MLPCLI_CACHE_DIR"


def default_folder() -> str:
    """`$MLPCLI_CACHE_DIR`, else `$XDG_CACHE_HOME/mlpcli`, else `~/.cache/mlpcli`."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mlpcli")
