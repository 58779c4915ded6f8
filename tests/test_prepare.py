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
