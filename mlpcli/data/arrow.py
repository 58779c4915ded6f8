"""The optional pyarrow paths of writing and reading text tables.

pyarrow (the `parquet` extra) formats numbers in C++ and parses CSV on every core without the
GIL. Where it is installed, `data.write` formats CSV cells with it (the same bytes as NumPy's
path, 2.6-3.4x less CPU); `MLPCLI_ARROW=0` in the environment (or `USE_ARROW = False`) turns
every pyarrow path off.

`read_table` parses text tables of `FROM_BYTES` or more with pyarrow (`parse_csv`: the frame
one pandas call gives, or a hand-back to pandas), in place of the block reader or the one pandas
call: 1,000,000 x 100 (862 MB) read in 24-35 s against 25-34 s for one pandas call and 30-31 s
in blocks at load 5-7, where a second core is rarely free (12.1-13.8 CPU s against 11.1-12.6
and 15.7-16.1), and 44-51 s against 177 s and 113 s at load 16-25; reading's peak 0.63 GB against
1.79 GB and 0.68 GB. `MLPCLI_ARROW_READ=0` in the environment turns it off (the block reader
and one pandas call, as without pyarrow), `=1` reads every text table this way. A plain file of
`SPLIT_FROM_BYTES` or more is cut into `RANGES` byte ranges at newlines, each parsed and
converted on its own thread into its own rows of one float32 matrix (`_read_ranges`), unless a
range before the last holds a double quote (a quoted field may hold a newline): then it goes
through one stream, as a compressed file does.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pandas as pd

#: Whether pyarrow may be used at all (when it imports).
USE_ARROW: bool = os.environ.get("MLPCLI_ARROW", "1") != "0"

#: Whether `read_table` parses text tables with pyarrow: None (the default) for those of
#: `FROM_BYTES` or more, True for all, False for none (see the module docstring).
READ_CSV: bool | None = {"1": True, "0": False}.get(os.environ.get("MLPCLI_ARROW_READ", ""))

#: Bytes of a plain text file from which `read_table` parses it with pyarrow by default.
FROM_BYTES = 256 << 20

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


# --------------------------------------------------------------------------- reading
#: Bytes of text per block pyarrow parses (on its own threads, without the GIL). Small blocks
#: keep little in flight in pyarrow's pool, whose freed pages its threads keep: reading
#: 1,000,000 x 100 peaked at 596-609 MB with 1 MB blocks against 716 MB with 4 MB (and 645 MB
#: for the block reader), 559-561 MB resident after `limits.return_freed_memory` like the
#: block reader's 559 (load 4-5).
BLOCK_BYTES = 1 << 20

#: pandas' C parser reads these (and only these) as booleans.
TRUE_VALUES = ("True", "TRUE", "true")
FALSE_VALUES = ("False", "FALSE", "false")


class _Doubt(Exception):
    """pyarrow's frame might not be pandas' (a cell that does not fit the column's type in the
    sample, a parse error): the caller parses the whole text with pandas instead."""


def parse_csv(
    stream: io.RawIOBase,
    parse: dict[str, Any],
    head: bytes,
    size_hint: int | None = None,
    whole: WholeFile | None = None,
) -> pd.DataFrame | None:
    """The frame `pd.read_csv(stream, **parse)` gives, parsed by pyarrow; None when pyarrow
    cannot promise it (the stream is then consumed: read the text again with pandas).

    pandas types the columns from the `head` sample (the first 64 KB): a column text there is
    text in the whole file, and the others are read with the type pandas gave them, so any
    cell pandas would type otherwise fails pyarrow's conversion, which means "ask pandas".
    Numbers are parsed as float64 (pandas' values) and cast to float32 a block at a time into
    one row-major matrix: the table never exists whole in float64. `size_hint`, the bytes of a
    plain file, sizes that matrix ahead (from the sample's bytes per row), so it is written
    once and never copied to grow. A `whole` plain file of `SPLIT_FROM_BYTES` or more with no
    double quote is parsed in byte ranges instead (`_read_ranges`), the stream left unread.
    """
    import pandas as pd

    from mlpcli.data.blocks import cut_records

    found = modules()
    if found is None:
        return None
    sample = _sample(head, parse)
    if sample is None:
        return None
    pa, _, csv = found
    # pyarrow's names: the header's cells, where pandas names an empty one "Unnamed: i".
    names = ["" if n == f"Unnamed: {i}" else n for i, n in enumerate(sample.columns)]
    types: dict[str, Any] = {}
    text_dtypes: dict[str, Any] = {}
    for name, dtype in zip(names, sample.dtypes, strict=True):
        if dtype in (np.float64, np.int64, np.bool_):
            types[name] = pa.from_numpy_dtype(dtype)
        elif isinstance(dtype, pd.StringDtype):  # not object (pandas < 3: None, not NaN)
            types[name], text_dtypes[name] = pa.string(), dtype
        else:
            return None
    if len(types) != len(names):
        return None
    options = _Options(csv, parse, types)
    columns = _Columns(names, types, pa, text_dtypes)
    per_row = cut_records(head, b'"' in head) / (len(sample) + 1)  # bytes, the header too
    try:
        if whole is not None and whole.size >= SPLIT_FROM_BYTES and RANGES > 1:
            frame = _read_ranges(whole, options, columns, per_row)
            if frame is not None:
                frame.columns = sample.columns
                return frame
        reader = options.open(io.BufferedReader(stream, BLOCK_BYTES), True)  # whole blocks
        if reader.schema.names != names:
            return None
        # Rows the file holds if they are as long as the sample's, and 5% more.
        rows_hint = int(size_hint / per_row * 1.05) + 1024 if size_hint else 0
        frame = columns.read(reader, rows_hint)
    except (pa.ArrowException, _Doubt):
        return None
    frame.columns = sample.columns
    return frame


def _sample(head: bytes, parse: dict[str, Any]) -> pd.DataFrame | None:
    """pandas' frame of the whole records in `head` (None if it has none, or cannot say)."""
    import pandas as pd

    from mlpcli.data.blocks import cut_records

    end = cut_records(head, b'"' in head)
    try:
        sample = pd.read_csv(io.BytesIO(head[:end]), **parse)
    except Exception:
        return None
    if not len(sample) or not isinstance(sample.index, pd.RangeIndex):
        return None  # no rows to type the columns by, or R row names
    if not all(isinstance(c, str) for c in sample.columns):
        return None
    return sample


class _Options:
    """pyarrow's options for pandas' reading options, and a reader of a stream with them."""

    def __init__(self, csv: Any, parse: dict[str, Any], types: dict[str, Any]) -> None:
        self.csv = csv
        self.sep = parse["sep"]
        self.convert = csv.ConvertOptions(
            column_types=types,
            null_values=list(parse["na_values"]),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            true_values=list(TRUE_VALUES),
            false_values=list(FALSE_VALUES),
            decimal_point=parse["decimal"],
        )

    def open(
        self, stream: Any, threads: bool, names: list[str] | None = None, quoted: bool = True
    ) -> Any:
        """A streaming reader; `names` for text without its header line, `quoted` False for
        text without a double quote."""
        csv = self.csv
        return csv.open_csv(
            stream,
            read_options=csv.ReadOptions(
                use_threads=threads, block_size=BLOCK_BYTES, column_names=names
            ),
            parse_options=csv.ParseOptions(
                delimiter=self.sep, newlines_in_values=quoted, quote_char='"' if quoted else False
            ),
            convert_options=self.convert,
        )


# --------------------------------------------------------------------------- byte ranges
def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: Byte ranges a large plain file is parsed in, each by its own single-threaded pyarrow reader
#: on its own thread, which also converts its batches into its rows of the float32 matrix (the
#: streaming reader converted every batch on the main thread while its pool parsed: CPU/wall
#: 1.32 on 2 cores). One per CPU this process may use, at most 4.
RANGES: int = min(_usable_cpus(), 4) if hasattr(os, "pread") else 1

#: Bytes of a plain file from which pyarrow reads it in `RANGES` byte ranges.
SPLIT_FROM_BYTES = 16 << 20

#: Bytes per read when a range's records are counted.
COUNT_BYTES = 1 << 20


@dataclass
class WholeFile:
    """A plain file `parse_csv` may read itself, in byte ranges, rather than through its stream;
    `sha256` is then set (computed alongside, "" without `checksum`)."""

    path: str
    fd: int
    size: int
    checksum: bool
    sha256: str | None = None


class _Range(io.RawIOBase):
    """Bytes `start` to `end` of a file, read with `os.pread` (threads share the descriptor)."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        super().__init__()
        self.fd, self.at, self.end = fd, start, end

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        n = self.end - self.at if size is None or size < 0 else min(size, self.end - self.at)
        data = os.pread(self.fd, n, self.at) if n > 0 else b""
        self.at += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _cuts(fd: int, size: int, n: int) -> list[int]:
    """Offsets that cut the file into about `n` equal ranges, each just after a newline."""
    cuts = [0]
    for k in range(1, n):
        at = max(size * k // n, cuts[-1])
        while at < size:
            piece = os.pread(fd, 1 << 16, at)
            found = piece.find(b"\n")
            if found >= 0:
                at += found + 1
                break
            at += len(piece)
        if cuts[-1] < at < size:
            cuts.append(at)
    return [*cuts, size]


def _newlines(fd: int, start: int, end: int) -> int | None:
    """The newlines in bytes `start` to `end`: at least the records there, as no field holds
    one when the file has no double quote; None if a double quote is found. Read into one
    buffer of `COUNT_BYTES`, which stays in the cache (16 MB reads took twice the CPU)."""
    count, at = 0, start
    buffer = bytearray(COUNT_BYTES)
    while at < end:
        view = memoryview(buffer)[: min(COUNT_BYTES, end - at)]
        if hasattr(os, "preadv"):
            n = os.preadv(fd, [view], at)
        else:
            data = os.pread(fd, len(view), at)
            n = len(data)
            view[:n] = data
        if n == 0:  # the file shrank
            raise _Doubt("the file is shorter than it was")
        if buffer.find(b'"', 0, n) >= 0:
            return None
        count += int(np.count_nonzero(np.frombuffer(buffer, np.uint8, n) == 10))
        at += n
    return count


def _count(pool: Any, fd: int, spans: list[tuple[int, int]], threads: int) -> list[int] | None:
    """`_newlines` of each span, every span counted in `threads` pieces at once (with 2 ranges
    only the first is counted: one core would wait); None if any holds a double quote."""
    pieces = [
        (start + (end - start) * i // threads, start + (end - start) * (i + 1) // threads)
        for start, end in spans
        for i in range(threads)
    ]
    found = list(pool.map(lambda piece: _newlines(fd, *piece), pieces))
    if any(count is None for count in found):
        return None
    return [sum(int(c or 0) for c in found[k : k + threads]) for k in range(0, len(found), threads)]


def _read_ranges(
    whole: WholeFile, options: _Options, columns: _Columns, per_row: float
) -> pd.DataFrame | None:
    """The file parsed in `RANGES` byte ranges at once, or None when a range but the last
    holds a double quote (a quoted field may hold a newline: the ranges after it could not be
    cut at records).

    The newlines of each range but the last bound its records, and the last range is given
    room for rows half as long as the sample's (`per_row` bytes), pages never written being
    never resident; so one matrix is allocated first and every range writes its own rows of
    it. Rows a range left empty (blank lines) are closed up after.
    """
    from concurrent.futures import ThreadPoolExecutor

    from mlpcli.data.codecs import FileHasher

    cuts = _cuts(whole.fd, whole.size, RANGES)
    spans = list(itertools.pairwise(cuts))
    with ThreadPoolExecutor(len(spans), thread_name_prefix="mlpcli-parse") as pool:
        counts = _count(pool, whole.fd, spans[:-1], len(spans))
        if counts is None:
            return None
        hasher = FileHasher(whole.path) if whole.checksum else None
        last = spans[-1][1] - spans[-1][0]
        room = [*counts, int(last / per_row * 2) + 1024]
        room[0] -= len(spans) > 1  # the header's newline
        starts = [0, *itertools.accumulate(room)]
        matrix = np.empty((starts[-1], len(columns.floats)), dtype=np.float32)
        stop = threading.Event()

        def parse(k: int) -> _Part:
            names = None if k == 0 else columns.names
            quoted = k == len(spans) - 1  # no range before it has a quote: cut at records
            reader = options.open(_Range(whole.fd, *spans[k]), False, names, quoted)
            if reader.schema.names != columns.names:
                raise _Doubt("the header is not the sample's")
            rows = matrix[starts[k] : starts[k + 1]]
            try:
                return columns.fill(reader, _Fixed(rows).place, stop)
            except BaseException:
                stop.set()  # the other ranges stop at their next batch
                raise

        parts = list(pool.map(parse, range(len(spans))))
    whole.sha256 = hasher.hexdigest() if hasher is not None else ""
    n_rows = _close_up(matrix, starts, [part.n_rows for part in parts])
    return columns.frame(matrix, n_rows, parts)


def _close_up(matrix: NDArray[np.float32], starts: list[int], counts: list[int]) -> int:
    """Each range's rows moved down to follow the previous range's, in place; the rows in all.
    The matrix keeps its length (`_Columns.frame` trims it)."""
    import ctypes

    row_bytes = matrix.strides[0]
    at = 0
    for start, count in zip(starts, counts, strict=False):
        if start != at and count:
            base = matrix.ctypes.data
            ctypes.memmove(base + at * row_bytes, base + start * row_bytes, count * row_bytes)
        at += count
    return at


class _Fixed:
    """Rows of a preallocated matrix handed out batch by batch; more rows than it has is a
    `_Doubt` (a record count that was not a bound)."""

    def __init__(self, rows: NDArray[np.float32]) -> None:
        self.rows = rows

    def place(self, start: int, n: int) -> NDArray[np.float32]:
        if start + n > len(self.rows):
            raise _Doubt("more records than newlines")
        return self.rows[start : start + n]


class _Growing:
    """A matrix of `rows_hint` rows that grows by half when a batch does not fit."""

    def __init__(self, rows_hint: int, width: int) -> None:
        self.matrix = np.empty((max(rows_hint, 1), width), dtype=np.float32)

    def place(self, start: int, n: int) -> NDArray[np.float32]:
        if start + n > len(self.matrix):
            rows = max(start + n, len(self.matrix) * 3 // 2)
            grown = np.empty((rows, self.matrix.shape[1]), dtype=np.float32)
            grown[:start] = self.matrix[:start]
            self.matrix = grown
        return self.matrix[start : start + n]


@dataclass
class _Part:
    """What one reader's batches gave: its rows, and the chunks of the columns kept in arrow."""

    n_rows: int
    ints: dict[int, list[Any]]
    others: dict[int, list[Any]]


class _Columns:
    """The batches of pyarrow readers gathered into pandas' columns: float64 columns (and
    int64 ones with a missing cell, as pandas types them) in one float32 matrix."""

    def __init__(
        self, names: list[str], types: dict[str, Any], pa: Any, text_dtypes: dict[str, Any]
    ) -> None:
        self.pa = pa
        self.text_dtypes = text_dtypes
        self.names = names
        self.types = [str(types[name]) for name in names]
        self.floats = [i for i, t in enumerate(self.types) if t == "double"]
        self.ints = [i for i, t in enumerate(self.types) if t == "int64"]
        self.others = [i for i, t in enumerate(self.types) if t not in ("double", "int64")]

    def read(self, reader: Any, rows_hint: int) -> pd.DataFrame:
        """One streaming reader's table."""
        growing = _Growing(rows_hint, len(self.floats))
        part = self.fill(reader, growing.place)
        return self.frame(growing.matrix, part.n_rows, [part])

    def fill(
        self,
        batches: Any,
        place: Callable[[int, int], NDArray[np.float32]],
        stop: threading.Event | None = None,
    ) -> _Part:
        """Each batch's floats into the rows `place(first row, rows)` gives; the others kept."""
        part = _Part(0, {i: [] for i in self.ints}, {i: [] for i in self.others})
        for batch in batches:
            if stop is not None and stop.is_set():
                raise _Doubt("another range failed")
            n = batch.num_rows
            rows = place(part.n_rows, n)
            if self.floats:  # one row-major float64 tensor per batch (missing cells NaN)
                values = batch.select(self.floats).to_tensor(null_to_nan=True, row_major=True)
                with np.errstate(over="ignore"):
                    rows[:] = np.asarray(values)
            for i in self.ints:
                part.ints[i].append(batch.column(i))
            for i in self.others:
                column = batch.column(i)
                if self.types[i] == "bool" and column.null_count:
                    raise _Doubt(f"column {self.names[i]} has booleans and missing cells")
                part.others[i].append(column)
            part.n_rows += n
        return part

    def frame(self, matrix: NDArray[np.float32], n_rows: int, parts: list[_Part]) -> pd.DataFrame:
        """pandas' frame of the parts' rows, in order: the first `n_rows` of `matrix` (trimmed
        in place) hold their floats."""
        import pandas as pd

        from mlpcli.data.cache import frame_from_blocks

        if n_rows == 0:
            raise _Doubt("no data rows")  # pandas' own message
        if len(matrix) != n_rows:  # in place (glibc's mremap for a mapped buffer): no copy,
            matrix.resize((n_rows, matrix.shape[1]), refcheck=False)  # and a base of n_rows
        int_parts = {i: [c for part in parts for c in part.ints[i]] for i in self.ints}
        other_parts = {i: [c for part in parts for c in part.others[i]] for i in self.others}
        ints_as_floats = [i for i in self.ints if any(c.null_count for c in int_parts[i])]
        floats = sorted([*self.floats, *ints_as_floats])
        slot = {i: floats.index(i) for i in floats}
        if ints_as_floats:  # integers with a missing cell are floats to pandas: widen
            wider = np.empty((n_rows, len(floats)), dtype=np.float32)
            wider[:, [slot[i] for i in self.floats]] = matrix
            matrix = wider
        with np.errstate(over="ignore"):
            for i in ints_as_floats:
                chunks = self.pa.chunked_array(int_parts.pop(i))
                matrix[:, slot[i]] = chunks.to_numpy().astype(np.float64)
        blocks: list[tuple[Any, NDArray[np.intp]]] = []
        if floats:
            blocks.append((matrix.T, np.asarray(floats, np.intp)))
        for i, chunks in int_parts.items():
            values = self.pa.chunked_array(chunks, type=self.pa.int64()).to_numpy()
            blocks.append((values[None, :], np.asarray([i], np.intp)))
        for i, chunks in other_parts.items():
            array = self.pa.chunked_array(chunks, type=self._arrow_type(i))
            if self.types[i] == "bool":
                blocks.append((array.to_numpy()[None, :], np.asarray([i], np.intp)))
            else:
                text = pd.array(array, dtype=self.text_dtypes[self.names[i]])
                blocks.append((text, np.asarray([i], np.intp)))
        return frame_from_blocks(blocks, pd.RangeIndex(n_rows), pd.Index(self.names))

    def _arrow_type(self, i: int) -> Any:
        return self.pa.bool_() if self.types[i] == "bool" else self.pa.string()
