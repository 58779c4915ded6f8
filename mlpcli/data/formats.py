"""Binary table formats: Parquet, Feather/Arrow, Excel workbooks and AnnData `.h5ad` files.

One small reader class per format, in a registry keyed by format name; `reader_for` picks one
from the extension (or the magic bytes of an oddly named file), and `data.read_table` hands the
frame it returns to the same column checks as a CSV's, so every command that reads a table
takes these formats. Each reader needs an optional extra; a missing one is a one-line error
naming the install command. Parquet and Feather are memory-mapped and read only the columns
asked for; an h5ad's matrix is opened backed (memory-mapped) and only the wanted genes are made
dense.

pandas and the format libraries are imported inside the functions: `--help` must stay fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
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

    def _reject(self, options: ReadOptions, path: str) -> None:
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
        self._reject(options, path)
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


class ExcelReader(FormatReader):
    """An .xlsx workbook: the first sheet, or `--sheet NAME`."""

    name = "Excel"
    extensions = (".xlsx", ".xlsm")
    magic = b"PK\x03\x04"  # a zip archive; only the extension decides
    extra = "excel"
    module = "openpyxl"

    def read(self, path: str, options: ReadOptions) -> FormatTable:
        import pandas as pd

        self._reject(options, path)
        openpyxl = self.load(path)
        try:
            workbook = openpyxl.load_workbook(path, read_only=True)
            sheets = list(workbook.sheetnames)
            workbook.close()
        except Exception as error:  # openpyxl raises zipfile, KeyError and its own errors
            raise DataError(f"Cannot read '{path}' as an Excel workbook: {error}.") from None
        sheet = sheets[0] if options.sheet is None else options.sheet
        if sheet not in sheets:
            raise DataError(f"'{path}' has no sheet '{sheet}'; {_choices('--sheet', sheets)}.")
        frame = pd.read_excel(
            path,
            sheet_name=sheet,
            engine="openpyxl",
            na_values=list(options.na_values),
            keep_default_na=False,
            dtype=dict.fromkeys(options.text_columns, "str") or None,
        )
        if options.columns is not None:
            frame = frame[[c for c in frame.columns if str(c) in set(options.columns)]]
        return FormatTable(_tidy(frame, options))


class AnnDataReader(FormatReader):
    """An .h5ad file: `X` (or `--layer NAME`), dense or sparse (CSR/CSC), as one column per
    `var_names` entry, the `obs` columns (targets, groups, covariates), and `obs_names` as the
    row ID.

    Read with h5py from AnnData's documented on-disk layout (encoding-version 0.1.0 and later,
    anndata >= 0.7): the anndata package itself pins pandas below 3 on Python 3.11. Only the
    wanted genes are read, sparse matrices without densifying the others.
    """

    name = "AnnData"
    extensions = (".h5ad",)
    magic = b"\x89HDF\r\n\x1a\n"
    extra = "anndata"
    module = "h5py"

    def read(self, path: str, options: ReadOptions) -> FormatTable:
        import pandas as pd

        self._reject(options, path)
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
            values = _h5_matrix(_layer(handle, path, options.layer), index, len(obs_names), path)
        if options.columns is not None:
            obs = obs[[c for c in obs.columns if c in set(options.columns)]]
        features = pd.DataFrame(values, columns=[genes[i] for i in index])
        ids = pd.Series(obs_names, name=OBS_NAMES, dtype="str")
        frame = pd.concat([ids, obs, features], axis=1)
        return FormatTable(_tidy(frame, options), id_column=OBS_NAMES)


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
    index = _text(group[index_key])
    if index_only:
        return None, index
    order = group.attrs.get("column-order", [])
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(order)]
    frame = pd.DataFrame({name: _h5_column(group[name], name, path) for name in names})
    return frame, index


def _h5_matrix(node: Any, index: Any, n_obs: int, path: str) -> Any:
    """Columns `index` of a dense or CSR/CSC matrix node, dense float32 (n_obs, len(index))."""
    kind = _encoding(node)
    if kind in ("csr_matrix", "csc_matrix"):
        shape = tuple(int(v) for v in node.attrs["shape"])
        indptr = np.asarray(node["indptr"], dtype=np.int64)
        indices = np.asarray(node["indices"], dtype=np.int64)
        data = np.asarray(node["data"])
        lengths = np.diff(indptr)
        major = np.repeat(np.arange(len(lengths)), lengths)
        rows, cols = (major, indices) if kind == "csr_matrix" else (indices, major)
        position = np.full(shape[1], -1, dtype=np.int64)
        position[index] = np.arange(len(index))
        keep = position[cols] >= 0
        out = np.zeros((shape[0], len(index)), dtype=np.float32)
        out[rows[keep], position[cols[keep]]] = data[keep]
        return out
    if hasattr(node, "shape") and len(node.shape) == 2:
        if node.shape[0] != n_obs:
            raise DataError(f"'{path}': X has {node.shape[0]} rows for {n_obs} obs_names.")
        if len(index) == node.shape[1]:
            return np.asarray(node, dtype=np.float32)
        return np.asarray(node[:, index], dtype=np.float32)  # h5py: increasing indices
    raise DataError(f"'{path}': the matrix has an AnnData encoding '{kind}' mlpcli cannot read.")


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
