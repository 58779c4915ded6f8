"""Binary table formats: Parquet, Feather/Arrow, Excel workbooks and AnnData `.h5ad` files.

One small reader class per format, in a registry keyed by format name; `reader_for` picks one
from the extension (or the magic bytes of an oddly named file), and `data.read_table` hands the
frame it returns to the same column checks as a CSV's, so every command that reads a table
takes these formats. Each reader needs an optional extra; a missing one is a one-line error
naming the install command. Parquet and Feather are memory-mapped and read only the columns
asked for; Excel sheets and h5ad matrices are read in blocks of rows (`chunks`, which
`data.TableChunks` uses), and of an h5ad only the wanted genes are made dense.

pandas and the format libraries are imported inside the functions: `--help` must stay fast.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mlpcli.errors import DataError, UsageError, install_hint, offers

if TYPE_CHECKING:
    import pandas as pd

#: The column that holds an AnnData file's `obs_names` (the cell or sample IDs).
OBS_NAMES = "obs_names"


@dataclass(frozen=True)
class ReadOptions:
    """What a format needs beyond the path: the Excel sheet, the AnnData layer, which columns."""

    sheet: str | None = None
    layer: str | None = None
    columns: Sequence[str] | None = None  # None: all; names absent from the file are skipped
    text_columns: Sequence[str] = ()
    na_values: Sequence[str] = ()


@dataclass
class FormatTable:
    """A frame read from a binary format, and the column that names its rows (if the format
    has one, such as an h5ad's obs_names)."""

    frame: pd.DataFrame
    id_column: str | None = None


def _choices(option: str, names: Sequence[str]) -> str:
    """The sheets or layers a file has, offered as `option`'s values where the command has it
    (predict, evaluate and explain read the one the model was trained on)."""
    shown = ", ".join(names) if names else "none"
    if offers(option):
        return f"{option} takes one of: {shown}"
    return f"the model reads the {option[2:]} it was trained on, and this file has: {shown}"


class FormatReader:
    """Reads one binary format into a pandas frame (columns are features, targets, ids)."""

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]]
    magic: ClassVar[bytes]
    extra: ClassVar[str]
    module: ClassVar[str]
    #: The column naming the rows, for formats that have one (an h5ad's obs_names).
    id_column: ClassVar[str | None] = None

    def load(self, source: str) -> Any:
        """The format's library, or a one-line error naming the extra to install."""
        try:
            return importlib.import_module(self.module)
        except ImportError:
            raise DataError(
                f"Reading '{source}' ({self.name}) needs the {self.extra} extra: "
                f"{install_hint(self.extra)}."
            ) from None

    def read(self, path: str, options: ReadOptions) -> FormatTable:
        raise NotImplementedError

    def chunks(self, path: str, options: ReadOptions, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The table `chunk_rows` rows at a time, the index going on across chunks. Here: the
        whole (memory-mapped) table, sliced; Excel and AnnData read block by block instead."""
        frame = self.read(path, options).frame
        for start in range(0, len(frame), chunk_rows):
            yield frame.iloc[start : start + chunk_rows]

    def check_options(self, options: ReadOptions, path: str) -> None:
        """--sheet and --layer belong to one format each; elsewhere they are a mistake."""
        for option, value, owner in (
            ("--sheet", options.sheet, "Excel"),
            ("--layer", options.layer, "AnnData"),
        ):
            if value is not None and owner != self.name:
                raise UsageError(
                    f"{option} applies to {owner} files, not to '{path}' ({self.name})."
                )


class _ArrowReader(FormatReader):
    """Parquet and Feather share Arrow tables: memory-mapped, only the wanted columns read."""

    extra = "parquet"
    module = "pyarrow"

    def read(self, path: str, options: ReadOptions) -> FormatTable:
        self.check_options(options, path)
        self.load(path)
        schema_names = self._names(path)
        columns = (
            None
            if options.columns is None
            else [name for name in schema_names if name in set(options.columns)]
        )
        try:
            arrow = self._table(path, columns)
        except (OSError, ValueError) as error:
            raise DataError(f"Cannot read '{path}' as {self.name}: {error}.") from None
        frame = arrow.to_pandas()
        return FormatTable(_tidy(frame, options))

    def _names(self, path: str) -> list[str]:
        raise NotImplementedError

    def _table(self, path: str, columns: list[str] | None) -> Any:
        raise NotImplementedError


class ParquetReader(_ArrowReader):
    name = "Parquet"
    extensions = (".parquet", ".parq", ".pq")
    magic = b"PAR1"

    def _names(self, path: str) -> list[str]:
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except (OSError, ValueError) as error:
            raise DataError(f"Cannot read '{path}' as Parquet: {error}.") from None

    def _table(self, path: str, columns: list[str] | None) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=columns, memory_map=True)


class FeatherReader(_ArrowReader):
    name = "Feather/Arrow"
    extensions = (".feather", ".arrow", ".ipc")
    magic = b"ARROW1"

    def _names(self, path: str) -> list[str]:
        import pyarrow.ipc as ipc

        try:
            with ipc.open_file(path) as reader:
                return list(reader.schema.names)
        except (OSError, ValueError) as error:
            raise DataError(f"Cannot read '{path}' as Feather/Arrow: {error}.") from None

    def _table(self, path: str, columns: list[str] | None) -> Any:
        import pyarrow.feather as feather

        return feather.read_table(path, columns=columns, memory_map=True)


#: Rows of an Excel sheet parsed at once: only these are held as Python objects (openpyxl's
#: read-only mode streams the sheet's XML), so a sheet's reading memory is its typed frame.
EXCEL_CHUNK_ROWS = 10_000

#: Excel's error values; openpyxl's read-only rows give them as text, pandas reads them as NaN.
EXCEL_ERRORS = frozenset(
    {"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA"}
)


def _excel_cell(value: Any) -> Any:
    """A cell as `pandas.read_excel` (openpyxl engine) gives it to its parser: empty is "",
    an integral number an int, an error value NaN."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        as_int = int(value)
        return as_int if as_int == value else float(value)
    if isinstance(value, str) and value in EXCEL_ERRORS:
        return np.nan
    return value


def _excel_row(values: Sequence[Any]) -> list[Any]:
    row = [_excel_cell(v) for v in values]
    while row and isinstance(row[-1], str) and row[-1] == "":
        row.pop()  # trailing empty cells, as pandas trims them
    return row


class ExcelReader(FormatReader):
    """An .xlsx workbook: the first sheet, or `--sheet NAME`.

    Streamed: openpyxl's read-only mode yields rows, parsed `EXCEL_CHUNK_ROWS` at a time by the
    parser `pandas.read_excel` uses with the same arguments, so the table is exactly pandas'.
    A column whose chunks disagree in type (numbers, then an 'other' far down) is read again on
    its own, as pandas types it: whole.
    """

    name = "Excel"
    extensions = (".xlsx", ".xlsm")
    magic = b"PK\x03\x04"  # a zip archive; only the extension decides
    extra = "excel"
    module = "openpyxl"

    def read(self, path: str, options: ReadOptions) -> FormatTable:
        import pandas as pd

        frames: list[pd.DataFrame] = []
        kinds: list[dict[Any, Any]] = []
        positions: dict[Any, int] = {}
        for frame, names in self._chunks(path, options, EXCEL_CHUNK_ROWS):
            kinds.append({name: _kind(frame[name]) for name in frame.columns})
            frames.append(_compact(frame))
            positions.update((name, i) for i, name in enumerate(names))
        frame = pd.concat(frames) if len(frames) > 1 else frames[0]
        frame.index = pd.RangeIndex(len(frame))
        del frames
        again = [name for name in frame.columns if not _same_type([k.get(name) for k in kinds])]
        if again:
            whole = self._columns(path, options, {name: positions[name] for name in again})
            for name in again:
                frame[name] = whole[name].to_numpy()
        return FormatTable(_tidy(frame, options))

    def chunks(self, path: str, options: ReadOptions, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The sheet `chunk_rows` data rows at a time, typed chunk by chunk (like a CSV read
        with `chunksize`), the index going on across chunks; only `options.columns` kept."""
        for frame, _ in self._chunks(path, options, chunk_rows):
            yield frame

    def _chunks(
        self, path: str, options: ReadOptions, chunk_rows: int
    ) -> Iterator[tuple[pd.DataFrame, list[Any]]]:
        """(chunk, the names of all its columns in sheet order)."""
        with self._rows(path, options) as rows:
            header = next(rows, [])
            start, pending, block = 0, [], []
            for row in rows:
                if not row:
                    pending.append(row)  # empty rows count only if a row with data follows
                    continue
                block += pending
                pending.clear()
                block.append(row)
                if len(block) == chunk_rows:
                    yield self._parse(header, block, options, start)
                    start, block = start + chunk_rows, []
            if block or start == 0:
                yield self._parse(header, block, options, start)

    @contextlib.contextmanager
    def _rows(self, path: str, options: ReadOptions) -> Iterator[Iterator[list[Any]]]:
        """The sheet's rows, header first, as pandas' Excel reader converts them."""
        self.check_options(options, path)
        openpyxl = self.load(path)
        try:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
        except Exception as error:  # openpyxl raises zipfile, KeyError and its own errors
            raise DataError(f"Cannot read '{path}' as an Excel workbook: {error}.") from None
        try:
            sheets = list(book.sheetnames)
            sheet = sheets[0] if options.sheet is None else options.sheet
            if sheet not in sheets:
                raise DataError(f"'{path}' has no sheet '{sheet}'; {_choices('--sheet', sheets)}.")
            worksheet = book[sheet]
            worksheet.reset_dimensions()  # the stored extent can be wrong (pandas does the same)
            yield map(_excel_row, worksheet.iter_rows(values_only=True))
        finally:
            book.close()

    def _parse(
        self, header: list[Any], rows: list[list[Any]], options: ReadOptions, start: int
    ) -> tuple[pd.DataFrame, list[Any]]:
        import pandas as pd
        from pandas.io.parsers import TextParser

        width = max([len(header), *map(len, rows)])
        data = [row + [""] * (width - len(row)) for row in (header, *rows)]
        try:
            frame = TextParser(
                data,
                header=0,
                na_values=list(options.na_values),
                keep_default_na=False,
                skip_blank_lines=False,
                dtype=dict.fromkeys(options.text_columns, "str") or None,
            ).read()
        except pd.errors.EmptyDataError:
            return pd.DataFrame(), []
        names = list(frame.columns)
        if options.columns is not None:
            frame = frame[[c for c in names if str(c) in set(options.columns)]]
        frame.index = pd.RangeIndex(start, start + len(frame))
        return frame, names

    def _columns(self, path: str, options: ReadOptions, positions: dict[Any, int]) -> Any:
        """The columns at `positions` read again, each typed whole as pandas types it."""
        import pandas as pd

        cells: dict[Any, list[Any]] = {name: [] for name in positions}
        n_rows = 0
        with self._rows(path, options) as rows:
            next(rows, None)
            for i, row in enumerate(rows, 1):
                n_rows = i if row else n_rows
                for name, position in positions.items():
                    cells[name].append(row[position] if position < len(row) else "")
        one = ReadOptions(text_columns=options.text_columns, na_values=options.na_values)
        return pd.DataFrame(
            {
                name: self._parse([name], [[v] for v in column[:n_rows]], one, 0)[0].iloc[:, 0]
                for name, column in cells.items()
            }
        )


def _kind(column: pd.Series) -> Any:
    """A chunk's type for a column; None when it is all missing (floats of NaN)."""
    if column.dtype == np.float64 and bool(column.isna().all()):
        return None
    return column.dtype


def _same_type(kinds: list[Any]) -> bool:
    """Whether a column's chunks concatenate to the column pandas types whole: one type (or
    int and float, which make float), all-missing chunks only beside NaN-holding types."""
    present = {kind for kind in kinds if kind is not None}
    if present <= {np.dtype(np.int64), np.dtype(np.float64)}:
        return True
    return len(present) == 1 and (None not in kinds or present == {np.dtype(object)})


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """float64 columns as float32, as `read_table` casts them anyway (exactly: int and float32
    chunks concatenate to float64 and are cast back): the chunks held until the end are half."""
    wide = [name for name in frame.columns if frame[name].dtype == np.float64]
    return frame.astype(dict.fromkeys(wide, np.float32)) if wide else frame


#: Rows of an h5ad matrix read at once (row blocks of X or a layer), in `read` and in `chunks`.
H5AD_BLOCK_ROWS = 10_000

#: Stored entries of a CSC matrix read at once (its columns are contiguous, its rows are not).
CSC_BLOCK_ENTRIES = 1 << 22


class AnnDataReader(FormatReader):
    """An .h5ad file: `X` (or `--layer NAME`), dense or sparse (CSR/CSC), as one column per
    `var_names` entry, the `obs` columns (targets, groups, covariates), and `obs_names` as the
    row ID.

    Read with h5py alone from AnnData's documented on-disk layout (encoding-version 0.1.0 and
    later, anndata >= 0.7; strings plain or nullable, as anndata writes pandas 3's), in row
    blocks of `H5AD_BLOCK_ROWS`: only the wanted genes of a block are made dense, and a CSR
    matrix's arrays are sliced by `indptr`, never read whole. A CSC matrix
    stores columns contiguously: the whole table is filled column block by column block (one
    pass), while each row block of `chunks` scans the stored entries again (bounded memory,
    a pass per block).
    """

    name = "AnnData"
    extensions = (".h5ad",)
    magic = b"\x89HDF\r\n\x1a\n"
    extra = "anndata"
    module = "h5py"
    id_column = OBS_NAMES

    def read(self, path: str, options: ReadOptions) -> FormatTable:
        with self._open(path, options) as (obs, matrix):
            values = matrix.whole()
            return FormatTable(self._frame(obs, matrix, values, 0, options), OBS_NAMES)

    def chunks(self, path: str, options: ReadOptions, chunk_rows: int) -> Iterator[pd.DataFrame]:
        with self._open(path, options) as (obs, matrix):
            for start in range(0, len(obs), chunk_rows):
                stop = min(start + chunk_rows, len(obs))
                block = obs.iloc[start:stop]
                yield self._frame(block, matrix, matrix.rows(start, stop), start, options)

    @contextlib.contextmanager
    def _open(self, path: str, options: ReadOptions) -> Iterator[tuple[pd.DataFrame, _Matrix]]:
        """(obs_names and the wanted obs columns, the wanted genes of the matrix)."""
        import pandas as pd

        self.check_options(options, path)
        h5py = self.load(path)
        try:
            handle = h5py.File(path, "r")
        except OSError as error:
            raise DataError(f"Cannot read '{path}' as AnnData (.h5ad): {error}.") from None
        with handle:
            if "obs" not in handle or "var" not in handle or "X" not in handle:
                raise DataError(
                    f"'{path}' is an HDF5 file but not an AnnData one (no X, obs and var); "
                    "write it with anndata's write_h5ad."
                )
            obs, obs_names = _h5_dataframe(handle["obs"], path)
            _, genes = _h5_dataframe(handle["var"], path, index_only=True)
            clash = sorted(set(genes) & {*obs.columns, OBS_NAMES})
            if clash:
                raise DataError(
                    f"'{path}': var_names {', '.join(map(repr, clash[:5]))} are also obs "
                    "columns; rename one of them."
                )
            wanted = set(genes if options.columns is None else options.columns)
            index = np.asarray([i for i, gene in enumerate(genes) if gene in wanted], np.intp)
            if options.columns is not None:
                obs = obs[[c for c in obs.columns if c in set(options.columns)]]
            obs.insert(0, OBS_NAMES, pd.Series(obs_names, dtype="str"))
            node = _layer(handle, path, options.layer)
            yield obs, _matrix(node, index, [genes[i] for i in index], len(obs_names), path)

    def _frame(
        self, obs: pd.DataFrame, matrix: _Matrix, values: Any, start: int, options: ReadOptions
    ) -> pd.DataFrame:
        import pandas as pd

        features = pd.DataFrame(values, columns=matrix.names, copy=False)
        frame = pd.concat([obs.reset_index(drop=True), features], axis=1)
        frame.index = pd.RangeIndex(start, start + len(frame))
        return _tidy(frame, options)


class _Matrix:
    """The wanted columns (`index`, increasing) of X or a layer, read as float32 row blocks."""

    def __init__(self, node: Any, index: Any, names: list[str], n_obs: int) -> None:
        self.node, self.index, self.names, self.n_obs = node, index, names, n_obs

    def rows(self, start: int, stop: int) -> Any:
        raise NotImplementedError

    def whole(self) -> Any:
        """Every row, filled block by block into one float32 array (no second copy)."""
        out = np.empty((self.n_obs, len(self.index)), dtype=np.float32)
        for start in range(0, self.n_obs, H5AD_BLOCK_ROWS):
            stop = min(start + H5AD_BLOCK_ROWS, self.n_obs)
            out[start:stop] = self.rows(start, stop)
        return out


class _Dense(_Matrix):
    def rows(self, start: int, stop: int) -> Any:
        if not len(self.index):
            return np.zeros((stop - start, 0), dtype=np.float32)
        if len(self.index) == self.node.shape[1]:
            return np.asarray(self.node[start:stop], dtype=np.float32)
        return np.asarray(self.node[start:stop, self.index], dtype=np.float32)


class _Sparse(_Matrix):
    """CSR or CSC: `indptr` (one entry per row or column, small) is read once; `data` and
    `indices` only in slices."""

    def __init__(self, node: Any, index: Any, names: list[str], n_obs: int) -> None:
        super().__init__(node, index, names, n_obs)
        self.indptr = np.asarray(node["indptr"], dtype=np.int64)
        n_vars = int(node.attrs["shape"][1])
        self.position = np.full(n_vars, -1, dtype=np.int64)
        self.position[index] = np.arange(len(index))

    def _entries(self, lo: int, hi: int) -> tuple[Any, Any]:
        return self.node["data"][lo:hi], np.asarray(self.node["indices"][lo:hi], np.int64)


class _Csr(_Sparse):
    def rows(self, start: int, stop: int) -> Any:
        data, cols = self._entries(self.indptr[start], self.indptr[stop])
        rows = np.repeat(np.arange(stop - start), np.diff(self.indptr[start : stop + 1]))
        out = np.zeros((stop - start, len(self.index)), dtype=np.float32)
        return _scatter(out, rows, self.position[cols], data)


class _Csc(_Sparse):
    def _column_blocks(self) -> Iterator[tuple[Any, Any, Any]]:
        """(rows, output positions, values) of the wanted columns, a bounded block at a time."""
        wanted = self.index
        begin = 0
        while begin < len(wanted):
            end = begin + 1
            while (
                end < len(wanted)
                and self.indptr[wanted[end] + 1] - self.indptr[wanted[begin]] <= CSC_BLOCK_ENTRIES
            ):
                end += 1
            first, last = wanted[begin], wanted[end - 1]
            data, rows = self._entries(self.indptr[first], self.indptr[last + 1])
            cols = np.repeat(np.arange(first, last + 1), np.diff(self.indptr[first : last + 2]))
            yield rows, self.position[cols], data
            begin = end

    def whole(self) -> Any:
        out = np.zeros((self.n_obs, len(self.index)), dtype=np.float32)
        for rows, positions, data in self._column_blocks():
            _scatter(out, rows, positions, data)
        return out

    def rows(self, start: int, stop: int) -> Any:
        out = np.zeros((stop - start, len(self.index)), dtype=np.float32)
        for rows, positions, data in self._column_blocks():
            inside = (rows >= start) & (rows < stop)
            _scatter(out, rows[inside] - start, positions[inside], data[inside])
        return out


def _scatter(out: Any, rows: Any, positions: Any, data: Any) -> Any:
    """Sparse entries written into the dense block `out`; positions of -1 (genes not wanted)
    are dropped."""
    keep = positions >= 0
    out[rows[keep], positions[keep]] = data[keep]
    return out


#: AnnData matrix encodings -> their block reader (a plain dataset is dense).
MATRICES: dict[str, type[_Matrix]] = {"csr_matrix": _Csr, "csc_matrix": _Csc, "array": _Dense}


def _matrix(node: Any, index: Any, names: list[str], n_obs: int, path: str) -> _Matrix:
    kind = _encoding(node)
    dense = kind in ("array", "") and hasattr(node, "shape") and len(node.shape) == 2
    if kind not in MATRICES and not dense:
        raise DataError(
            f"'{path}': the matrix has an AnnData encoding '{kind}' mlpcli cannot read."
        )
    rows = int(node.shape[0] if dense else node.attrs["shape"][0])
    if rows != n_obs:
        raise DataError(f"'{path}': X has {rows} rows for {n_obs} obs_names.")
    return MATRICES["array" if dense else kind](node, index, names, n_obs)


def _layer(handle: Any, path: str, layer: str | None) -> Any:
    if layer is None:
        return handle["X"]
    layers = list(handle["layers"].keys()) if "layers" in handle else []
    if layer not in layers:
        raise DataError(f"'{path}' has no layer '{layer}'; {_choices('--layer', layers)}.")
    return handle["layers"][layer]


def _text(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values)]


def _encoding(node: Any) -> str:
    value = node.attrs.get("encoding-type", "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _h5_column(node: Any, name: str, path: str) -> Any:
    """One obs/var column: a plain array, strings, a categorical, or a nullable array."""
    import pandas as pd

    kind = _encoding(node)
    if kind == "categorical":
        codes = np.asarray(node["codes"])
        categories = _h5_column(node["categories"], name, path)
        labels = np.asarray(categories, dtype=object)
        out = np.where(codes >= 0, labels[np.maximum(codes, 0)], None)
        if np.asarray(categories).dtype.kind in "fiub":
            return pd.to_numeric(pd.Series(out, dtype=object))
        return pd.Series(out, dtype=object).where(codes >= 0, np.nan)
    if kind == "nullable-string-array":  # anndata >= 0.11 under pandas 3 (its str dtype)
        values = pd.Series(_text(node["values"]), dtype=object)
        return values.where(~np.asarray(node["mask"], dtype=bool), np.nan)
    if kind in ("nullable-integer", "nullable-boolean"):
        values = np.asarray(node["values"]).astype(np.float64)
        values[np.asarray(node["mask"], dtype=bool)] = np.nan
        return values
    if kind == "string-array" or np.asarray(node).dtype.kind in "OSU":
        return pd.Series(_text(node), dtype=object)
    if kind in ("array", "") and hasattr(node, "shape"):
        return np.asarray(node)
    raise DataError(
        f"'{path}': column '{name}' has an AnnData encoding '{kind}' mlpcli cannot read."
    )


def _h5_dataframe(group: Any, path: str, index_only: bool = False) -> tuple[Any, list[str]]:
    """An obs/var group as (columns as a frame, the index as strings)."""
    import pandas as pd

    if _encoding(group) != "dataframe":
        raise DataError(
            f"'{path}' uses an AnnData layout older than 0.7 (obs/var are not dataframe groups); "
            "read and write it again with a current anndata."
        )
    index_key = group.attrs.get("_index", "_index")
    index_key = index_key.decode() if isinstance(index_key, bytes) else str(index_key)
    index = [str(name) for name in _h5_column(group[index_key], index_key, path)]
    if index_only:
        return None, index
    order = group.attrs.get("column-order", [])
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(order)]
    frame = pd.DataFrame({name: _h5_column(group[name], name, path) for name in names})
    return frame, index


def _tidy(frame: pd.DataFrame, options: ReadOptions) -> pd.DataFrame:
    """What the CSV reader gives: string column names, missing-value tokens in text columns
    read as missing, ID columns as text."""
    frame.columns = [str(c) for c in frame.columns]
    tokens = set(options.na_values)
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object or str(column.dtype).startswith("string"):
            column = column.astype(object)
            frame[name] = column.where(~column.isin(tokens), np.nan) if tokens else column
        if name in options.text_columns:
            frame[name] = frame[name].astype("str")
    return frame


#: Format name -> reader; `reader_for` finds one by extension, then magic bytes.
READERS: dict[str, FormatReader] = {
    "parquet": ParquetReader(),
    "feather": FeatherReader(),
    "excel": ExcelReader(),
    "h5ad": AnnDataReader(),
}


def reader_for(path: str | Path) -> FormatReader | None:
    """The binary format of `path` from its extension, else its first bytes (a Parquet file
    named `.dat`); None for text tables (and for stdin)."""
    name = str(path)
    if name == "-":
        return None
    suffix = Path(name).suffix.lower()
    for reader in READERS.values():
        if suffix in reader.extensions:
            return reader
    if not Path(name).is_file():
        return None  # FIFOs and devices are read once, as text; missing files reported there
    try:
        with open(name, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None  # the text reader reports an unreadable file
    for reader in READERS.values():
        if reader.magic != b"PK\x03\x04" and head.startswith(reader.magic):
            return reader
    return None
