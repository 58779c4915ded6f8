"""Mini-batches from a matrix on disk in shuffled blocks, and a split needing no table in memory.

Block shuffling (out-of-core training): the rows are cut into blocks of `block_rows`
contiguous rows. Every epoch the block order is permuted; the blocks are then taken
`window_blocks` at a time, each window is read with one sequential read per block and its rows
are permuted within the window; mini-batches are consecutive slices of that order. Every row is
seen exactly once per epoch (the last batch may be short, as in memory), reads are large and
sequential so the page cache and read-ahead work, and memory holds one window.

Its effect on results: a batch draws its rows from one window (or two, at a window's edge)
instead of the whole table, so batches are less independent than with a full permutation.
The gradient is still unbiased over an epoch and, with windows of many blocks spread over the
table, batches mix rows from distant parts of the file; but rows sorted by the target or by a
batch effect should be shuffled once on disk (a row order correlated with the target over more
than a window makes consecutive batches correlated). Results equal neither the in-memory
sampler's (another permutation) nor each other across different `block_rows`/`window_blocks`.

Row-hash split: a row is a validation row when a 64-bit hash of its ID (or group, or row
number) and the seed falls below `valid_fraction` of the range: stable across chunkings and
re-runs without holding the table, and a group stays on one side. It is not stratified.
Out-of-core cross-validation puts a row in fold floor(K u) for such a hash u salted per repeat.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pandas as pd

#: Bytes read per block: large enough for sequential reads, small against the memory limit.
BLOCK_BYTES = 1 << 20
#: Blocks per shuffling window.
WINDOW_BLOCKS = 32


@dataclass
class RowFile:
    """A C-order (n_rows, n_cols) matrix stored raw at `offset` in a file, read by rows with
    plain reads (`os.preadv`), so what it reads never stays mapped in the process."""

    path: str
    n_rows: int
    n_cols: int
    dtype: np.dtype
    offset: int = 0
    #: What keeps the file alive (a temporary folder removed when the last reader is gone).
    owner: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of_memmap(cls, array: np.memmap) -> RowFile:
        """The file behind a C-order memory map (e.g. a cache entry's `.numeric`)."""
        if array.ndim != 2 or not array.flags.c_contiguous or array.filename is None:
            raise ValueError("a RowFile needs a two-dimensional C-order memory map of a file")
        return cls(str(array.filename), array.shape[0], array.shape[1], array.dtype, array.offset)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    def __len__(self) -> int:
        return self.n_rows

    def read(self, start: int, stop: int, out: NDArray[np.generic] | None = None) -> NDArray[Any]:
        """Rows [start, stop) as an array (into `out`, when given, of at least that many rows)."""
        stop = min(stop, self.n_rows)
        m = max(0, stop - start)
        buffer = np.empty((m, self.n_cols), self.dtype) if out is None else out[:m]
        row_bytes = self.n_cols * self.dtype.itemsize
        view = buffer.reshape(-1).view(np.uint8).data
        fd = os.open(self.path, os.O_RDONLY)
        try:
            done, want, position = 0, m * row_bytes, self.offset + start * row_bytes
            while done < want:
                got = os.preadv(fd, [view[done:]], position + done)
                if got <= 0:
                    raise OSError(f"'{self.path}' ended early (truncated?)")
                done += got
        finally:
            os.close(fd)
        return buffer

    def __getitem__(self, rows: slice) -> NDArray[Any]:
        start, stop, step = rows.indices(self.n_rows)
        if step != 1:
            raise IndexError("a RowFile reads contiguous rows only")
        return self.read(start, stop)


class RowFileWriter:
    """Appends float32 rows to a raw file (written back as it goes, so a memory limit does not
    fill with dirty pages); `finish()` gives the `RowFile` to read it back."""

    def __init__(self, path: str | Path, n_cols: int, dtype: np.dtype = np.dtype(np.float32)):
        from mlpcli.outputs import WriteBackFile

        self.path, self.n_cols, self.dtype = str(path), n_cols, np.dtype(dtype)
        self.n_rows = 0
        self._file = WriteBackFile(self.path)

    def append(self, rows: NDArray[Any]) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.n_cols:
            raise ValueError(f"expected (rows, {self.n_cols}), got {rows.shape}")
        self._file.write(rows.reshape(-1).view(np.uint8).data)
        self.n_rows += len(rows)

    def finish(self) -> RowFile:
        self._file.close()
        return RowFile(self.path, self.n_rows, self.n_cols, self.dtype)

    def close(self) -> None:
        self._file.close()


class BlockBatches:
    """Shuffled mini-batches of (X, Y, w): rows of X read from a `RowFile` in blocks of
    contiguous rows in a permuted order, permuted within windows of blocks (see the module
    docstring); Y and w (small: outputs and weights per row) are in memory. The `Trainer` uses
    it like its in-memory sampler."""

    def __init__(
        self,
        X: RowFile,
        Y: NDArray[Any],
        w: NDArray[Any] | None,
        batch_size: int,
        block_rows: int | None = None,
        window_blocks: int = WINDOW_BLOCKS,
        drop_single: bool = False,
    ) -> None:
        if len(Y) != X.n_rows or (w is not None and len(w) != X.n_rows):
            raise ValueError("X, Y and w have different row counts")
        self.X, self.Y, self.w = X, np.asarray(Y), w
        self.n_rows = n = X.n_rows
        self.batch_size = min(batch_size, n)
        row_bytes = X.n_cols * X.dtype.itemsize
        self.block_rows = block_rows or max(self.batch_size, BLOCK_BYTES // max(1, row_bytes))
        self.window_blocks = window_blocks
        self.drop_single = drop_single
        self.n_batches = -(-n // self.batch_size) - int(drop_single and n % self.batch_size == 1)
        self.n_blocks = -(-n // self.block_rows)
        self._window = np.empty((min(self.block_rows * window_blocks, n), X.n_cols), X.dtype)
        self._rows = np.empty(len(self._window), np.intp)  # file row of each window row

    def epoch(
        self, rng: np.random.Generator
    ) -> Iterator[tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]]:
        """(Xb, Yb, wb) for every batch of one epoch."""
        bs = self.batch_size
        blocks = rng.permutation(self.n_blocks)
        pending: list[tuple[NDArray[Any], NDArray[Any]]] = []  # a batch begun at a window's end
        n_pending = 0
        for w in range(0, self.n_blocks, self.window_blocks):
            filled = 0
            for b in np.sort(blocks[w : w + self.window_blocks]):  # read in file order
                start = int(b) * self.block_rows
                got = len(self.X.read(start, start + self.block_rows, self._window[filled:]))
                self._rows[filled : filled + got] = np.arange(start, start + got)
                filled += got
            order = rng.permutation(filled)
            position = 0
            if n_pending:  # complete the batch begun at the end of the previous window
                take = min(bs - n_pending, filled)
                pending.append(self._take(order[:take]))
                n_pending, position = n_pending + take, take
                if n_pending == bs:
                    yield self._joined(pending)
                    pending, n_pending = [], 0
            while filled - position >= bs:
                yield self._batch(*self._take(order[position : position + bs]))
                position += bs
            if filled > position:  # only when nothing is pending
                pending.append(self._take(order[position:filled]))
                n_pending += filled - position
        if n_pending and not (n_pending == 1 and self.drop_single):
            yield self._joined(pending)

    def _take(self, window_rows: NDArray[np.intp]) -> tuple[NDArray[Any], NDArray[Any]]:
        """Copies of some window rows and their file row numbers."""
        return self._window.take(window_rows, axis=0), self._rows[window_rows]

    def _joined(
        self, parts: list[tuple[NDArray[Any], NDArray[Any]]]
    ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]:
        return self._batch(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )

    def _batch(
        self, Xb: NDArray[Any], rows: NDArray[np.intp]
    ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]:
        return Xb, self.Y[rows], None if self.w is None else self.w[rows]


def _mix(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser: a bijection of 64-bit words that spreads every input bit."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def row_hash_unit(
    keys: pd.Series | NDArray[np.integer], seed: int | None, *stream: int
) -> NDArray[np.float64]:
    """A number in [0, 1) per row from the 64-bit hash of its key (an ID, a group, or the row
    number) mixed with the seed and, for another independent draw, a `stream` of integers
    (cross-validation's folds and inner splits). Depends on nothing but the key."""
    import pandas as pd

    if isinstance(keys, pd.Series):
        words = pd.util.hash_pandas_object(keys.astype(str), index=False).to_numpy(np.uint64)
    else:
        words = np.asarray(keys).astype(np.uint64)
    salt = _mix(np.array([np.uint64(0 if seed is None else seed) + np.uint64(0x9E3779B97F4A7C15)]))
    with np.errstate(over="ignore"):
        for part in stream:
            salt = _mix(salt + np.uint64(part + 1))
    return (_mix(words ^ salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def row_hash_valid(
    keys: pd.Series | NDArray[np.integer], valid_fraction: float, seed: int | None
) -> NDArray[np.bool_]:
    """Which rows validate: `row_hash_unit` below `valid_fraction`."""
    return row_hash_unit(keys, seed) < valid_fraction
