"""What the cells and columns of a table mean to the encoders: a cell's level name (categorical
cells) or float (numeric cells), and the one error for cells that are neither or for columns
the table lacks.

Shared by `preprocessing` (features), `target_encoding` (targets), `streaming` (statistics over
chunks), `predicting` (target checks) and the estimators, so that every reader names a level,
parses a number and reports a missing column the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlpcli.errors import DataError
from mlpcli.limits import shorten

Array = NDArray[np.float64]


def level_string(value: object) -> str:
    """The level name of one cell: integral numbers lose their '.0', so 1 and 1.0 are one level."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if float(value).is_integer():
            return str(int(value))
        # Shortest repr for the value's own dtype: float32 0.1 stays '0.1'.
        return np.format_float_positional(value, trim="-")
    return str(value)


def level_codes(series: pd.Series) -> tuple[NDArray[np.intp], list[str]]:
    """Factorize a column: per-row codes into a list of level names, -1 for missing cells.

    Two distinct raw values may share a name (1 and 1.0, or 1 and '1'); callers map names, not
    codes, so they become one level.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    names = [level_string(u) for u in np.asarray(uniques, dtype=object)]
    return np.asarray(codes, dtype=np.intp), names


#: What to do about cells that are not numbers in a numeric column, at predict time.
_BLANK_THEM = (
    "blank those cells (missing values are imputed as in training) or replace them with numbers."
)


def _not_numbers(series: pd.Series) -> str | None:
    """`holds 'oops' (2 non-numeric value(s) in all; first in data row 3)`, or None when every
    present cell of a text column parses as a number. The row is the frame's integer index + 1
    (a table's data row, chunks included), else the position."""
    if pd.api.types.is_numeric_dtype(series.dtype):
        return None
    bad = pd.to_numeric(series, errors="coerce").isna().to_numpy() & series.notna().to_numpy()
    if not bad.any():
        return None
    first = int(np.flatnonzero(bad)[0])
    label = series.index[first]
    row = int(label) + 1 if isinstance(label, int | np.integer) else first + 1
    return (
        f"holds {shorten(series.iloc[first])!r} ({int(bad.sum())} non-numeric value(s) in all; "
        f"first in data row {row})"
    )


def check_numbers(frame: pd.DataFrame, names: Sequence[str], what: str = "Column") -> None:
    """Every column of `names` that holds cells that are not numbers, named in one error."""
    numeric = set()  # by the dtypes alone: a column asked for may be a gather of its rows
    if frame.columns.is_unique:
        numeric = {c for c, d in frame.dtypes.items() if pd.api.types.is_numeric_dtype(d)}
    found = [
        (name, detail)
        for name in names
        if name not in numeric and (detail := _not_numbers(frame[name]))
    ]
    if len(found) == 1:
        name, detail = found[0]
        raise DataError(f"{what} '{name}' must be numeric but {detail}; {_BLANK_THEM}")
    if found:
        each = "; ".join(f"'{name}' {detail}" for name, detail in found)
        raise DataError(
            f"{len(found)} {what.lower()}s must be numeric but hold other values: {each}; "
            f"{_BLANK_THEM}"
        )


def numeric_values(series: pd.Series, name: str, what: str = "Column") -> Array:
    """A fresh float64 copy of a column (NaN for missing); strings that are not numbers fail."""
    values: Array
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    else:
        check_numbers(series.to_frame(name), [name], what)
        coerced = pd.to_numeric(series, errors="coerce")
        values = coerced.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(
            f"{what} '{name}' holds an infinite value ({values[infinite][0]}); "
            "replace it or mark it missing."
        )
    return values


def quote_list(names: Sequence[str], limit: int = 10) -> str:
    """`'a', 'b' and 3 more`: names for a message, at most `limit` of them."""
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """The columns a fitted encoder needs, all present in the table (in any order)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{len(missing)} {what} column(s) missing from the table: {quote_list(missing, 50)}; "
            "the table must have the columns the model was trained on (in any order)."
        )
