"""Scratch arrays the hot loop reuses: constant rows (ones, zeros) and per-batch-size buffers.

A training step runs a few dozen NumPy calls on small arrays; reusing their outputs keeps
steady-state training free of allocations. Callers must copy a buffer they want to keep.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


@functools.lru_cache(maxsize=32)
def ones(n: int, dtype: np.dtype) -> Array:
    """A read-only row of n ones: row and column sums as one BLAS matrix-vector product."""
    row = np.ones(n, dtype=dtype)
    row.flags.writeable = False
    return row


@functools.lru_cache(maxsize=32)
def zeros(n: int, dtype: np.dtype) -> Array:
    """A read-only row of n zeros."""
    row = np.zeros(n, dtype=dtype)
    row.flags.writeable = False
    return row


class BufferCache:
    """Scratch arrays keyed by (role, rows); a few batch sizes at most (full and last batch)."""

    def __init__(self, limit: int = 6) -> None:
        self._arrays: dict[tuple[str, int], Array] = {}
        self._limit = limit

    def get(self, role: str, shape: tuple[int, ...], dtype: np.dtype) -> Array:
        key = (role, shape[0])
        buf = self._arrays.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            if len(self._arrays) >= self._limit:
                self._arrays.clear()
            buf = np.empty(shape, dtype=dtype)
            self._arrays[key] = buf
        return buf
