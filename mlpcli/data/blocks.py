"""Parsing a text table in blocks on worker threads, as one pandas call would parse it whole.

`read.READ_IN_BLOCKS` switches it on (off by default, see there). The first block gives the
column names; the blocks' frames are joined with one dtype per column, and any doubt (`_Doubt`:
dtypes that do not combine, a parse error whose line number would be the block's) sends the
caller back to one pandas call over the whole text.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mlpcli.data.codecs import (
    Reader,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mlpcli")


#: Bytes of text per block parsed on a worker thread (the first block, parsed first for the
#: column names, is `FIRST_BLOCK_BYTES`): about 20,000 rows of 100 numbers.
BLOCK_BYTES = 16 << 20


FIRST_BLOCK_BYTES = 1 << 20


#: Threads that parse blocks. One: pandas holds the GIL for much of its parsing, so a second
#: thread bought no speed (at load 2-4: 18.9 s wall against 13.9 s for one pandas call) and held
#: twice the blocks in flight; the worker still overlaps parsing with reading the file.
PARSE_THREADS = 1

#: glibc's M_MMAP_THRESHOLD (mallopt): while blocks are parsed, buffers of at least
#: `UNMAPPED_FROM` bytes get their own mapping, returned to the system when freed; glibc's own
#: moving threshold would serve the next blocks from the heap, whose freed holes stay resident
#: (1,000,000 x 100: peak 0.62 GB with, 1.10 GB without). Afterwards `HEAP_BELOW` bytes, the
#: ceiling of glibc's moving threshold, so the training loop's buffers come from the heap again.
M_MMAP_THRESHOLD = -3
UNMAPPED_FROM = 1 << 20
HEAP_BELOW = 32 << 20


#: Blocks parsed or waiting at once: bounds the text and float64 frames held in flight.
BLOCKS_IN_FLIGHT = 2 * PARSE_THREADS


class _Doubt(Exception):
    """The blocks' frames do not combine into the one frame pandas gives for the whole text
    (a column typed differently in two blocks, a parse error whose line number would be the
    block's): the caller reads the file again in one pandas call."""


def first_rows_as_wide_as_header(text: str, sep: str) -> bool:
    """No R write.table row names (a first data row one field wider than the header), which
    pandas turns into the index only when it sees the header and the row together."""
    rows = csv.reader(io.StringIO(text), delimiter=sep)
    widths = [len(row) for row, _ in zip(rows, range(2), strict=False)]
    return len(widths) < 2 or widths[0] == widths[1]


def cut_records(data: bytes, quoted: bool) -> int:
    """Where the last whole record of `data` ends (after a newline outside double quotes;
    `data` starts outside quotes); 0 if no record ends in it."""
    if not quoted:
        return data.rfind(b"\n") + 1
    raw = np.frombuffer(data, dtype=np.uint8)
    inside = np.cumsum(raw == 34) % 2  # parity of the quotes so far: "" flips it twice
    ends = np.flatnonzero((raw == 10) & (inside == 0))
    return int(ends[-1]) + 1 if len(ends) else 0


def _blocks(stream: Reader) -> Iterator[bytes]:
    """Whole records, about `BLOCK_BYTES` at a time (the first `FIRST_BLOCK_BYTES`)."""
    carry = b""
    size = FIRST_BLOCK_BYTES
    while True:
        chunk = stream.read(size)
        if not chunk:
            if carry.strip():
                yield carry
            return
        data = carry + chunk
        end = cut_records(data, b'"' in data)
        if end == 0:  # one record longer than a block: read on
            carry = data
            continue
        carry = data[end:]
        yield data[:end]
        size = BLOCK_BYTES


@dataclass
class _Block:
    """One block's columns, compact: numbers as one float32 row-major array."""

    n_rows: int
    dtypes: list[Any]
    numbers: NDArray[np.float32]  # (n_rows, k): the float64 and int64 columns, in order
    ints: dict[int, NDArray[Any]]  # position -> int64 values (exact beyond float32)
    others: dict[int, Any]  # position -> Series (text, booleans)


def _parse_block(data: bytes, parse: dict[str, Any], names: list[str] | None) -> Any:
    import pandas as pd

    source = io.BytesIO(data)
    if names is None:
        return pd.read_csv(source, **parse)
    return pd.read_csv(source, header=None, names=names, **parse)


def _compact(frame: pd.DataFrame) -> _Block:
    dtypes = list(frame.dtypes)
    numeric = [i for i, d in enumerate(dtypes) if d in (np.float64, np.int64)]
    with np.errstate(over="ignore"):
        numbers = np.ascontiguousarray(frame.iloc[:, numeric].to_numpy(dtype=np.float32))
    ints = {i: frame.iloc[:, i].to_numpy() for i in numeric if dtypes[i] == np.int64}
    others = {i: frame.iloc[:, i] for i, d in enumerate(dtypes) if i not in set(numeric)}
    return _Block(len(frame), dtypes, numbers, ints, others)


@contextmanager
def freed_blocks_returned() -> Iterator[None]:
    """Large buffers mapped (see `UNMAPPED_FROM`) for the duration, and glibc's threshold
    fixed afterwards (pyarrow's reader too: `train` on 1,000,000 x 100 peaked 14 MB higher
    when it was left to move); a no-op without glibc."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (musl, macOS, Windows)
        yield
        return
    mallopt(M_MMAP_THRESHOLD, UNMAPPED_FROM)
    try:
        yield
    finally:
        mallopt(M_MMAP_THRESHOLD, HEAP_BELOW)


def parse_blocks(stream: Reader, parse: dict[str, Any]) -> pd.DataFrame | None:
    """See `_parse_blocks`; large buffers are returned to the system as blocks are freed."""
    with freed_blocks_returned():
        return _parse_blocks(stream, parse)


def _parse_blocks(stream: Reader, parse: dict[str, Any]) -> pd.DataFrame | None:
    """The text parsed in blocks on `PARSE_THREADS` threads, each block's numbers cast to
    float32 as soon as it is parsed (the whole table never exists as float64), then joined
    into the frame one pandas call would give, in `canonical` layout; None when that cannot
    be promised (`_Doubt`), after reading the whole stream."""
    from concurrent.futures import Future, ThreadPoolExecutor

    import pandas as pd

    blocks = _blocks(stream)
    first_text = next(blocks, b"")
    first = pd.read_csv(io.BytesIO(first_text), **parse)
    names = [str(c) for c in first.columns]
    if list(first.columns) != names:
        return first  # pandas made a name that is not text: no blocks to join
    done: list[_Block] = [_compact(first)]
    del first, first_text
    pending: list[Future[Any]] = []
    doubt = False
    with ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="mlpcli-parse") as pool:
        for text in blocks:
            pending.append(pool.submit(lambda t: _compact(_parse_block(t, parse, names)), text))
            while len(pending) >= BLOCKS_IN_FLIGHT or (pending and pending[0].done()):
                try:
                    done.append(pending.pop(0).result())
                except Exception:
                    doubt = True
        for future in pending:
            try:
                done.append(future.result())
            except Exception:
                doubt = True
    if doubt:
        return None
    try:
        return _join(done, pd.Index(names, dtype=_column_dtype(names)))
    except _Doubt:
        return None


def _column_dtype(names: list[str]) -> Any:
    import pandas as pd

    return pd.Index(names).dtype


def _join(done: list[_Block], names: pd.Index) -> pd.DataFrame:
    """The blocks as one frame, typed as pandas types a column read whole: int64 and float64
    blocks give float64 (then float32); any other disagreement is a `_Doubt`."""
    import pandas as pd

    from mlpcli.data.cache import frame_from_blocks

    n_columns = len(names)
    kinds: list[str] = []
    for i in range(n_columns):
        seen = {str(block.dtypes[i]) for block in done}
        if seen <= {"float64", "int64"}:
            kinds.append("float" if "float64" in seen else "int")
        elif len(seen) == 1:
            kinds.append("other")
        else:
            raise _Doubt(f"column {i} is typed {sorted(seen)} in different blocks")
    numeric = [i for i in range(n_columns) if kinds[i] != "other"]
    floats = [i for i in numeric if kinds[i] == "float"]
    take = [numeric.index(i) for i in floats]
    n_rows = sum(block.n_rows for block in done)
    matrix = np.empty((n_rows, len(floats)), dtype=np.float32)
    row = 0
    for block in done:
        whole = len(take) == block.numbers.shape[1]
        matrix[row : row + block.n_rows] = block.numbers if whole else block.numbers[:, take]
        block.numbers = matrix[:0]  # freed as it is copied: the peak is one table, not two
        row += block.n_rows
    parts: list[tuple[Any, NDArray[np.intp]]] = [(matrix.T, np.asarray(floats, np.intp))]
    for i in range(n_columns):
        if kinds[i] == "int":
            values = np.concatenate([block.ints[i] for block in done])
            parts.append((values[None, :], np.asarray([i], np.intp)))
        elif kinds[i] == "other":
            column = pd.concat([block.others[i] for block in done], ignore_index=True)
            values = (
                column.to_numpy()[None, :] if isinstance(column.dtype, np.dtype) else column.array
            )
            parts.append((values, np.asarray([i], np.intp)))
    return frame_from_blocks(parts, pd.RangeIndex(n_rows), names)
