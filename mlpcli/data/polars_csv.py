"""The optional polars path of reading text tables (the `fast` extra: polars and pyarrow),
off unless `MLPCLI_POLARS_READ=1` is in the environment (or `READ_CSV = True`).

polars parses CSV in Rust on its own threads without the GIL. `read_table` hands it the text in
blocks of whole records (the stream it already reads once, hashes and decompresses) and
gathers the blocks the way pyarrow's batches are gathered (`arrow.Columns`): numbers into one
float32 row-major matrix, a block at a time, so the table never exists whole in float64.

The frame is the one `pd.read_csv(stream, **parse)` gives, or None ("ask pandas"): pandas
types the columns from the first 64 KB (`arrow.typed_sample`) and polars parses every cell
with the type pandas gave its column, so a cell pandas would type otherwise fails polars'
parse; what polars would read otherwise (another encoding, thousands separators, a decimal
comma, booleans, blank lines) never reaches it or sends the table back.

Why off: it does not win here. Held to pandas' values (float64 parsed, then cast to float32),
polars took as much CPU as one pandas call on the 1,000,000 x 100 CSV (7.4-8.2 s against
6.4-7.7 s, load 11-12) and peaked higher (0.66 GiB against 0.54 for pyarrow's reader);
parsing straight to float32 is what made polars cheaper (3.4-3.9 CPU s against 5.4-6.0 for
one pandas call, load 6.5-7), and it rounds some cells near a float32 midpoint otherwise.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpcli.data import arrow

if TYPE_CHECKING:
    import pandas as pd

#: Whether `read_table` parses text tables with polars (see the module docstring).
READ_CSV: bool = os.environ.get("MLPCLI_POLARS_READ", "") == "1"

#: Bytes of text per block polars parses.
BLOCK_BYTES = 8 << 20

_modules: tuple[ModuleType, ModuleType] | None = None
_missing = False


def modules() -> tuple[ModuleType, ModuleType] | None:
    """(polars, pyarrow), or None when either is missing or pyarrow is switched off."""
    global _modules, _missing
    found = arrow.modules()
    if _missing or found is None:
        return None
    if _modules is None:
        try:
            import polars
        except ImportError:
            _missing = True
            return None
        _modules = (polars, found[0])
    return _modules


class _LinesPandasReadsOtherwise(Exception):
    """A blank or whitespace-only line (pandas skips it, polars makes a row of missing cells)
    or a lone carriage return (a line end to pandas) may be in the text (`_check_lines`)."""


def parse_csv(
    stream: io.RawIOBase, parse: dict[str, Any], head: bytes, size_hint: int | None = None
) -> pd.DataFrame | None:
    """The frame `pd.read_csv(stream, **parse)` gives, parsed by polars a block of whole
    records at a time; None when polars cannot promise it (the stream is then consumed: read
    the text again with pandas). `size_hint`, the bytes of a plain file, sizes the float32
    matrix ahead (`arrow.rows_hint`)."""
    found = modules()
    if found is None or not _options_polars_honours(parse, head):
        return None
    sample = arrow.typed_sample(head, parse)
    if sample is None:
        return None
    pl, pa = found
    schema = _schema(sample, pl)
    if schema is None or len(schema) < 2:  # one column: a blank line is a missing cell
        return None
    try:
        batches = _batches(stream, parse, schema, pl)
        first = next(batches, None)
        if first is None:
            return None
        hint = arrow.rows_hint(head, len(sample), size_hint)
        frame = arrow.Columns(first.schema, pa, _text_dtypes(sample), hint).read(
            itertools.chain([first], batches)
        )
    except (pl.exceptions.PolarsError, pa.ArrowException, arrow.Doubt, _LinesPandasReadsOtherwise):
        return None
    frame.columns = sample.columns
    return frame


def _options_polars_honours(parse: dict[str, Any], head: bytes) -> bool:
    """Options polars reads as pandas does; the others (another encoding or a byte-order mark,
    a decimal comma, thousands separators, a blank first line) stay with pandas."""
    return (
        parse["decimal"] == "."
        and parse["thousands"] is None
        and parse["encoding"] is None
        and len(parse["sep"]) == 1
        and not head.startswith(b"\xef\xbb\xbf")
        and head[:1] not in (b" ", b"\t", b"\r", b"\n")
    )


def _schema(sample: pd.DataFrame, pl: ModuleType) -> dict[str, Any] | None:
    """polars' type for each column (named by position), as pandas typed it in the sample;
    None for a dtype polars would not read as pandas does."""
    import pandas as pd

    types = {np.dtype(np.float64): pl.Float64, np.dtype(np.int64): pl.Int64}
    schema: dict[str, Any] = {}
    for i, dtype in enumerate(sample.dtypes):
        if isinstance(dtype, pd.StringDtype):
            schema[f"c{i}"] = pl.String
        elif dtype in types:
            schema[f"c{i}"] = types[dtype]
        else:
            return None  # booleans, object columns (pandas < 3)
    return schema


def _text_dtypes(sample: pd.DataFrame) -> dict[str, Any]:
    import pandas as pd

    dtypes = enumerate(sample.dtypes)
    return {f"c{i}": dtype for i, dtype in dtypes if isinstance(dtype, pd.StringDtype)}


def _batches(
    stream: io.RawIOBase, parse: dict[str, Any], schema: dict[str, Any], pl: ModuleType
) -> Iterator[Any]:
    """pyarrow record batches of the text's blocks of whole records, parsed by polars. Floats
    are cast to float32 on polars' threads with NumPy's rounding (IEEE round to nearest even,
    inf beyond float32's range): the bits of pandas' float64 values cast, where parsing
    straight to float32 would round some cells otherwise."""
    from mlpcli.data.blocks import record_blocks

    na_values = list(parse["na_values"])
    floats = [name for name, dtype in schema.items() if dtype == pl.Float64]
    for number, text in enumerate(record_blocks(stream, BLOCK_BYTES)):
        frame = pl.read_csv(
            text,
            has_header=False,
            skip_rows=1 if number == 0 else 0,  # the header: pandas named the columns
            schema=schema,
            separator=parse["sep"],
            quote_char='"',
            null_values=na_values,
            empty_string_is_null="" in na_values,
            raise_if_empty=False,
            try_parse_dates=False,
        )
        _check_lines(text, frame, pl)
        frame = frame.with_columns(pl.col(floats).cast(pl.Float32))
        yield from frame.to_arrow().to_batches()


def _check_lines(text: bytes, frame: Any, pl: ModuleType) -> None:
    """Raise `_LinesPandasReadsOtherwise` if the block `text`, parsed into `frame`, may hold
    a line pandas reads otherwise. A blank or whitespace-only line gives a row missing every
    cell after the first (a short row's cells are missing): any such row counts, since
    telling it from a row of missing cells would mean scanning the text in Python (0.8 s a
    gigabyte). A carriage return is looked for first (memchr), then counted."""
    if b"\r" in text and text.count(b"\r") != text.count(b"\r\n"):
        raise _LinesPandasReadsOtherwise
    rest = frame.columns[1:]
    if frame.select(pl.all_horizontal(pl.col(rest).is_null()).any()).item():
        raise _LinesPandasReadsOtherwise
