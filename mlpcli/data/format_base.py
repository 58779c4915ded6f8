"""What every binary-format reader shares: the options a format takes beyond the path, the
frame it returns, the reader base class (its extra, its optional chunked reading, the check that
--sheet/--layer belong to it) and the tidying that makes its frame look like a CSV's.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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


def choices(option: str, names: Sequence[str]) -> str:
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

    def shape(self, path: str) -> tuple[int, int] | None:
        """(rows, columns) from the file's metadata, without reading the table, for
        `--out-of-core auto`; None here: the format is not streamed out of core."""
        return None

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


def tidy(frame: pd.DataFrame, options: ReadOptions) -> pd.DataFrame:
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
