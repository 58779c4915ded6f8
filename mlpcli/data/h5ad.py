"""AnnData `.h5ad` files read with h5py alone, from AnnData's on-disk layout, in row blocks:
dense matrices by row slices, CSR by `indptr` slices, CSC by column blocks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpcli.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

from mlpcli.data.format_base import OBS_NAMES, FormatReader, FormatTable, ReadOptions, choices, tidy

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
        return tidy(frame, options)


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
        raise DataError(f"'{path}' has no layer '{layer}'; {choices('--layer', layers)}.")
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
