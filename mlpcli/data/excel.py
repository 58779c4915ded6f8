"""Excel workbooks, streamed: openpyxl's read-only mode yields rows, and pandas' own Excel
parser types them a chunk at a time, so the table is exactly `pandas.read_excel`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpcli.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

from mlpcli.data.format_base import FormatReader, FormatTable, ReadOptions, choices, tidy

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
        return FormatTable(tidy(frame, options))

    def shape(self, path: str) -> tuple[int, int] | None:
        """(rows, columns) of the first sheet as its stored dimension says (written by the
        program that saved it; may be off, as `_rows` says), None when it cannot be read."""
        try:
            import openpyxl

            book = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
        except Exception:  # openpyxl raises zipfile, KeyError and its own errors
            return None
        try:
            sheet = book[book.sheetnames[0]]
            rows, columns = sheet.max_row, sheet.max_column
        finally:
            book.close()
        return (max(0, rows - 1), columns) if rows and columns else None

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
                raise DataError(f"'{path}' has no sheet '{sheet}'; {choices('--sheet', sheets)}.")
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
