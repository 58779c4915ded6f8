"""Cells: level names and numeric parsing shared by preprocessing, streaming and predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpcli.cells import check_numbers, level_codes, level_string, numeric_values
from mlpcli.errors import DataError

NAN = np.nan


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1"),
        (1.0, "1"),
        (np.int64(7), "7"),
        (0.5, "0.5"),
        (np.float32(0.1), "0.1"),
        (True, "True"),
        ("b1", "b1"),
    ],
    ids=["int", "float", "np-int", "fraction", "float32", "bool", "str"],
)
def test_level_string(value: object, expected: str) -> None:
    assert level_string(value) == expected


def test_level_codes_give_one_name_to_1_and_1_0_and_minus_one_to_missing() -> None:
    codes, names = level_codes(pd.Series([1, 1.0, None, "b"], dtype=object))
    assert [names[c] if c >= 0 else None for c in codes] == ["1", "1", None, "b"]
    assert codes[2] == -1


def test_numeric_values_parse_numbers_written_as_text() -> None:
    values = numeric_values(pd.Series(["1.5", None, "2"], dtype=object), "dose")
    np.testing.assert_array_equal(values, [1.5, NAN, 2.0])
    assert values.dtype == np.float64


def test_numeric_values_copy_so_the_frame_is_untouched() -> None:
    series = pd.Series([1.0, 2.0])
    numeric_values(series, "dose")[0] = 99.0
    assert series.iloc[0] == 1.0


def test_a_cell_that_is_not_a_number_is_named_with_its_data_row() -> None:
    with pytest.raises(
        DataError,
        match=r"Column 'dose' must be numeric but holds 'oops' "
        r"\(1 non-numeric value\(s\) in all; first in data row 2\)",
    ):
        numeric_values(pd.Series(["1", "oops", None], dtype=object), "dose")


def test_an_infinite_value_is_refused() -> None:
    with pytest.raises(DataError, match=r"Target 'y' holds an infinite value \(inf\)"):
        numeric_values(pd.Series([1.0, np.inf]), "y", what="Target")


def test_check_numbers_names_every_bad_column_in_one_error() -> None:
    frame = pd.DataFrame({"a": ["x", "1"], "b": [1, 2], "c": ["2", "y"]})
    with pytest.raises(
        DataError, match=r"^2 columns must be numeric .*'a' holds 'x'.*'c' holds 'y'"
    ):
        check_numbers(frame, ["a", "b", "c"])
    check_numbers(frame, ["b"])  # all numbers: no error
