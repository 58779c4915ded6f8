"""prepare.py: the training rows read a column at a time instead of copied whole."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlpcli.prepare import RowsOf, rows_of


def test_rows_of_reads_what_the_copy_of_those_rows_holds() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((50, 3)).astype(np.float32), columns=["a", "b", "c"])
    frame["id"] = pd.Series([f"s{i}" for i in range(50)], dtype="str")
    rows = rng.permutation(50)[:20]
    copy, view = frame.iloc[rows], rows_of(frame, rows)
    assert isinstance(view, RowsOf) and len(view) == 20
    assert list(view.columns) == list(copy.columns)
    pd.testing.assert_series_equal(view["a"], copy["a"])
    pd.testing.assert_series_equal(view["id"], copy["id"])
    pd.testing.assert_frame_equal(view[["b", "id"]], copy[["b", "id"]])
    # Whatever else a reader asks comes from one copy of the rows.
    pd.testing.assert_series_equal(view.dtypes, copy.dtypes)
    pd.testing.assert_index_equal(view.index, copy.index)


def test_numeric_ids_are_told_from_measurements_by_their_first_rows_or_all_of_them() -> None:
    from mlpcli.data.columns import ID_PROBE_ROWS, _is_numeric_id

    n = 3 * ID_PROBE_ROWS
    order = pd.Series(np.random.default_rng(1).permutation(n) + 1.0)
    assert _is_numeric_id(order, "x")  # the row numbers in some order
    late = order.copy()
    late.iloc[-1] = 0.5  # a fraction after the first rows still rules it out
    assert not _is_numeric_id(late, "x")
    early = order.copy()
    early.iloc[3] = np.inf
    assert not _is_numeric_id(early, "x")
    assert not _is_numeric_id(pd.Series(np.linspace(0, 1, n)), "sample_id")
