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
and one pandas call, as without pyarrow), `=1` reads every text table this way.
"""

from __future__ import annotations

import io
import os
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
    stream: io.RawIOBase, parse: dict[str, Any], head: bytes, size_hint: int | None = None
) -> pd.DataFrame | None:
    """The frame `pd.read_csv(stream, **parse)` gives, parsed by pyarrow; None when pyarrow
    cannot promise it (the stream is then consumed: read the text again with pandas).

    pandas types the columns from the `head` sample (the first 64 KB): a column text there is
    text in the whole file, and the others are read with the type pandas gave them, so any
    cell pandas would type otherwise fails pyarrow's conversion, which means "ask pandas".
    Numbers are parsed as float64 (pandas' values) and cast to float32 a block at a time into
    one row-major matrix: the table never exists whole in float64. `size_hint`, the bytes of a
    plain file, sizes that matrix ahead (from the sample's bytes per row), so it is written
    once and never copied to grow.
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
    try:
        reader = csv.open_csv(
            io.BufferedReader(stream, BLOCK_BYTES),  # whole blocks: no short reads
            read_options=csv.ReadOptions(use_threads=True, block_size=BLOCK_BYTES),
            parse_options=csv.ParseOptions(delimiter=parse["sep"], newlines_in_values=True),
            convert_options=csv.ConvertOptions(
                column_types=types,
                null_values=list(parse["na_values"]),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                true_values=list(TRUE_VALUES),
                false_values=list(FALSE_VALUES),
                decimal_point=parse["decimal"],
            ),
        )
        if reader.schema.names != names:
            return None
        rows_hint = 0
        if size_hint:  # rows the file holds if they are as long as the sample's, and 5% more
            per_row = cut_records(head, b'"' in head) / (len(sample) + 1)
            rows_hint = int(size_hint / per_row * 1.05) + 1024
        frame = _Columns(reader.schema, pa, text_dtypes, rows_hint).read(reader)
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


class _Columns:
    """The batches of a pyarrow reader gathered into pandas' columns: float64 columns (and
    int64 ones with a missing cell, as pandas types them) in one float32 matrix."""

    def __init__(
        self, schema: Any, pa: Any, text_dtypes: dict[str, Any], rows_hint: int = 0
    ) -> None:
        self.pa = pa
        self.rows_hint = rows_hint
        self.text_dtypes = text_dtypes
        self.types = [str(field.type) for field in schema]
        self.names = list(schema.names)
        self.floats = [i for i, t in enumerate(self.types) if t == "double"]
        self.ints = [i for i, t in enumerate(self.types) if t == "int64"]
        self.others = [i for i, t in enumerate(self.types) if t not in ("double", "int64")]

    def read(self, reader: Any) -> pd.DataFrame:
        import pandas as pd

        from mlpcli.data.cache import frame_from_blocks

        matrix = np.empty((max(self.rows_hint, 1), len(self.floats)), dtype=np.float32)
        int_parts: dict[int, list[Any]] = {i: [] for i in self.ints}
        other_parts: dict[int, list[Any]] = {i: [] for i in self.others}
        n_rows = 0
        for batch in reader:
            n = batch.num_rows
            if n_rows + n > len(matrix):  # more rows than the hint: grow by half
                rows = max(n_rows + n, len(matrix) * 3 // 2)
                grown = np.empty((rows, matrix.shape[1]), dtype=np.float32)
                grown[:n_rows] = matrix[:n_rows]
                matrix = grown
            if self.floats:  # one row-major float64 tensor per batch (missing cells NaN)
                values = batch.select(self.floats).to_tensor(null_to_nan=True, row_major=True)
                with np.errstate(over="ignore"):
                    matrix[n_rows : n_rows + n] = np.asarray(values)
            for i in self.ints:
                int_parts[i].append(batch.column(i))
            for i in self.others:
                column = batch.column(i)
                if self.types[i] == "bool" and column.null_count:
                    raise _Doubt(f"column {self.names[i]} has booleans and missing cells")
                other_parts[i].append(column)
            n_rows += n
        if n_rows == 0:
            raise _Doubt("no data rows")  # pandas' own message
        if len(matrix) != n_rows:  # in place (glibc's mremap for a mapped buffer): no copy,
            matrix.resize((n_rows, matrix.shape[1]), refcheck=False)  # and a base of n_rows
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
        parts: list[tuple[Any, NDArray[np.intp]]] = []
        if floats:
            parts.append((matrix.T, np.asarray(floats, np.intp)))
        for i, chunks in int_parts.items():
            values = self.pa.chunked_array(chunks).to_numpy()
            parts.append((values[None, :], np.asarray([i], np.intp)))
        for i, chunks in other_parts.items():
            array = self.pa.chunked_array(chunks)
            if self.types[i] == "bool":
                parts.append((array.to_numpy()[None, :], np.asarray([i], np.intp)))
            else:
                text = pd.array(array, dtype=self.text_dtypes[self.names[i]])
                parts.append((text, np.asarray([i], np.intp)))
        return frame_from_blocks(parts, pd.RangeIndex(n_rows), pd.Index(self.names))
