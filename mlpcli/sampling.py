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
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
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
    """Appends float32 rows to a raw file; `finish()` gives the `RowFile` to read it back."""

    def __init__(self, path: str | Path, n_cols: int, dtype: np.dtype = np.dtype(np.float32)):
        self.path, self.n_cols, self.dtype = str(path), n_cols, np.dtype(dtype)
        self.n_rows = 0
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed by finish/close)

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
    """Shuffled mini-batches of (X, Y, w) read from one `RowFile` whose columns are
    [X | Y | w]: blocks of contiguous rows in a permuted order, rows permuted within windows
    of blocks (see the module docstring). The `Trainer` uses it like its in-memory sampler."""

    def __init__(
        self,
        rows: RowFile,
        n_features: int,
        n_outputs: int,
        weighted: bool,
        batch_size: int,
        block_rows: int | None = None,
        window_blocks: int = WINDOW_BLOCKS,
        drop_single: bool = False,
    ) -> None:
        if rows.n_cols != n_features + n_outputs + int(weighted):
            raise ValueError("the row file's columns are not X, Y (and w)")
        self.rows, self.n_features, self.n_outputs = rows, n_features, n_outputs
        self.weighted = weighted
        self.n_rows = rows.n_rows
        self.batch_size = min(batch_size, self.n_rows)
        row_bytes = rows.n_cols * rows.dtype.itemsize
        self.block_rows = block_rows or max(self.batch_size, BLOCK_BYTES // row_bytes)
        self.window_blocks = window_blocks
        self.drop_single = drop_single
        n = self.n_rows
        self.n_batches = -(-n // self.batch_size) - int(drop_single and n % self.batch_size == 1)
        self.n_blocks = -(-n // self.block_rows)
        window_rows = self.block_rows * self.window_blocks
        self._window = np.empty((min(window_rows, n), rows.n_cols), rows.dtype)
        self._carry = np.empty((self.batch_size, rows.n_cols), rows.dtype)

    def epoch(
        self, rng: np.random.Generator
    ) -> Iterator[tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]]:
        """(Xb, Yb, wb) views into reused buffers, valid until the next batch."""
        d, k, bs = self.n_features, self.n_outputs, self.batch_size
        blocks = rng.permutation(self.n_blocks)
        carried = 0  # rows of a batch begun at the end of the previous window
        for w in range(0, self.n_blocks, self.window_blocks):
            filled = 0
            for b in np.sort(blocks[w : w + self.window_blocks]):  # read in file order
                start = int(b) * self.block_rows
                got = self.rows.read(start, start + self.block_rows, self._window[filled:])
                filled += len(got)
            window = self._window[:filled]
            order = rng.permutation(filled)
            position = 0
            if carried:  # complete the batch begun at the end of the previous window
                take = min(bs - carried, filled)
                self._carry[carried : carried + take] = window[order[:take]]
                carried, position = carried + take, take
                if carried == bs:
                    yield self._split(self._carry, d, k)
                    carried = 0
            while filled - position >= bs:
                batch = window.take(order[position : position + bs], axis=0)
                position += bs
                yield self._split(batch, d, k)
            rest = filled - position  # nonzero only when nothing is carried
            if rest:
                self._carry[carried : carried + rest] = window[order[position:]]
                carried += rest
        if carried and not (carried == 1 and self.drop_single):
            yield self._split(self._carry[:carried], d, k)

    def _split(
        self, batch: NDArray[Any], d: int, k: int
    ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]:
        X, Y = batch[:, :d], batch[:, d : d + k]
        w = batch[:, d + k] if self.weighted else None
        return np.ascontiguousarray(X), np.ascontiguousarray(Y), w


def _mix(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser: a bijection of 64-bit words that spreads every input bit."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def row_hash_valid(
    keys: pd.Series | NDArray[np.integer], valid_fraction: float, seed: int | None
) -> NDArray[np.bool_]:
    """Which rows validate: the hash of each key (an ID, a group, or the row number) mixed
    with the seed, below `valid_fraction` of the 64-bit range. Depends on nothing but the key."""
    import pandas as pd

    if isinstance(keys, pd.Series):
        words = pd.util.hash_pandas_object(keys.astype(str), index=False).to_numpy(np.uint64)
    else:
        words = np.asarray(keys).astype(np.uint64)
    salt = _mix(np.array([np.uint64(0 if seed is None else seed) + np.uint64(0x9E3779B97F4A7C15)]))
    unit = (_mix(words ^ salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return unit < valid_fraction
