"""prepare.py: the training rows read a column at a time instead of copied whole, and the
features written over the table's own numbers, bit for bit what a fresh encoding gives."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli import config, prepare
from mlpcli.data import read
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
    pd.testing.assert_series_equal(view.dtypes, copy.dtypes)
    assert view._whole is None  # no copy of the rows made so far
    # Whatever else a reader asks comes from one copy of the rows.
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


def _table_csv(path: Path, n: int = 90, seed: int = 3) -> Path:
    """sample, five measurements (one with gaps), a two-level batch, a class and a quantity."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.standard_normal((n, 5)).round(4), columns=list("abcde"))
    frame.loc[rng.random(n) < 0.2, "e"] = np.nan
    frame.insert(0, "sample", [f"s{i:03d}" for i in range(n)])
    frame["batch"] = np.where(rng.random(n) < 0.5, "b1", "b2")
    frame["label"] = np.where(frame["a"] + frame["b"] > 0, "yes", "no")
    frame["dose"] = (frame["a"] * 3 + rng.standard_normal(n)).round(3)
    frame.to_csv(path, index=False)
    return path


#: Options -> whether the features fit in the table's numeric matrix (a, b, c, d, e, dose).
OVERWRITE_CASES = {
    "classes": ({"target": "label", "drop": ["batch"]}, True),
    "numeric-target": ({"target": "dose", "drop": ["batch", "label"], "valid_fraction": 0.3}, True),
    "categorical": ({"target": "label", "drop": ["d", "e"]}, True),
    "one-column-too-many": ({"target": "label"}, False),
    "indicators": ({"target": "label", "missing_indicators": True}, False),
    "no-validation": ({"target": "label", "drop": ["batch"], "valid_fraction": 0.0}, True),
    "valid-file": ({"target": "label", "drop": ["batch"], "valid_file": "VALID"}, True),
}


def _root(array: np.ndarray) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


@pytest.mark.parametrize("blocks", [True, False], ids=["blocks", "one-call"])
@pytest.mark.parametrize("case", sorted(OVERWRITE_CASES))
def test_features_written_over_the_table_are_those_of_a_fresh_encoding(
    case: str,
    blocks: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(read, "READ_IN_BLOCKS", blocks)
    monkeypatch.setattr(prepare, "OVERWRITE_ROWS", 7)  # many row blocks
    options, fits = OVERWRITE_CASES[case]
    path = _table_csv(tmp_path / "t.csv")
    if options.get("valid_file"):
        options = {**options, "valid_file": str(_table_csv(tmp_path / "v.csv", 30, seed=4))}
    settings = config.resolve({"id": ["sample"], "seed": 2, **options})
    loaded = prepare.load_table(str(path), settings)
    caplog.set_level(logging.INFO, logger="mlpcli")
    caplog.clear()
    fresh = prepare.prepare_loaded(loaded, settings, np.random.default_rng(5))
    said = [r.getMessage() for r in caplog.records]
    caplog.clear()
    over = prepare.prepare_data(str(path), settings, np.random.default_rng(5))
    logged = [r.getMessage() for r in caplog.records]
    assert logged[len(logged) - len(said) :] == said  # after the reading's own messages
    for name in ("X", "Y", "y_index", "X_val", "Y_val", "y_index_val", "sample_weight"):
        a, b = getattr(fresh, name), getattr(over, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert a.tobytes() == b.tobytes(), name
    pd.testing.assert_frame_equal(fresh.split, over.split)
    assert over.X.flags.c_contiguous and fresh.X.base is None
    # Written over the table: X (and X_val of a split) view the table's (rows, 6) matrix.
    assert (_root(over.X).shape == (90, 6)) is fits
    if fits and over.X_val is not None and not options.get("valid_file"):
        assert _root(over.X_val) is _root(over.X)


def test_a_validation_level_training_lacks_is_told_once_as_by_a_fresh_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(prepare, "OVERWRITE_ROWS", 7)
    path = _table_csv(tmp_path / "t.csv")
    settings = config.resolve({"target": "label", "id": ["sample"], "drop": ["d", "e"]})
    split = prepare.prepare_data(str(path), settings, np.random.default_rng(5)).split
    frame = pd.read_csv(path)
    frame.loc[np.flatnonzero(split["set"] == "valid")[[0, -1]], "batch"] = "b3"  # split stays
    frame.to_csv(path, index=False)
    told = []
    for overwrite in (False, True):
        loaded = prepare.load_table(str(path), settings)
        with caplog.at_level(logging.WARNING, logger="mlpcli"):
            caplog.clear()
            prepared = prepare.prepare_loaded(
                loaded, settings, np.random.default_rng(5), overwrite_table=overwrite
            )
        told.append([r.getMessage() for r in caplog.records])
        assert prepared.X_val is not None and (_root(prepared.X).shape == (90, 6)) is overwrite
    assert told[0] == told[1]
    assert sum("levels not seen in training ('b3')" in m for m in told[1]) == 1, told


def test_features_of_a_cached_table_are_not_written_over_its_memory_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlpcli.data import cache

    before = cache.active_root()
    cache.use(tmp_path / "cache")
    try:
        path = str(_table_csv(tmp_path / "t.csv"))
        os.utime(path, (time.time() - 10, time.time() - 10))  # past the racy window: cached
        settings = config.resolve({"target": "label", "id": ["sample"], "drop": ["batch"]})
        runs = [prepare.prepare_data(path, settings, np.random.default_rng(5)) for _ in range(3)]
    finally:
        cache.use(before)
    # The parsed table (building the entry), then its memory map twice. X is encoded beside
    # the map, not over it: joblib sends a memory-mapped array to worker processes by file
    # name, where X written over a copy-on-write map would be the file's raw numbers.
    assert not isinstance(_root(runs[2].X), np.memmap)
    for run in runs[1:]:
        assert run.X.tobytes() == runs[0].X.tobytes()
        assert run.X_val is not None and runs[0].X_val is not None
        assert run.X_val.tobytes() == runs[0].X_val.tobytes()


def test_rows_of_a_row_major_matrix_gather_neighbouring_columns_with_the_same_values() -> None:
    """Columns of the reader's row-major matrix come a group at a time (`GATHER_COLUMNS`),
    in any order asked, each equal to the column of the copied rows."""
    from mlpcli.data.cache import canonical

    rng = np.random.default_rng(4)
    names = [f"f{j:02d}" for j in range(prepare.GATHER_COLUMNS * 2 + 3)]
    frame = pd.DataFrame(rng.standard_normal((200, len(names))).astype(np.float32), columns=names)
    frame.insert(3, "id", pd.Series([f"s{i}" for i in range(200)], dtype="str"))
    frame = canonical(frame)
    matrix = prepare._root(frame["f00"].to_numpy())
    assert matrix.ndim == 2 and matrix.flags.c_contiguous  # the layout the gather is for
    rows = np.sort(rng.permutation(200)[:90])
    copy, view = frame.iloc[rows], rows_of(frame, rows)
    pd.testing.assert_series_equal(view["f00"], copy["f00"])
    assert list(view._group) == names[1 : prepare.GATHER_COLUMNS]  # its neighbours, kept
    for name in [*names[::-1], "id", *names, *names]:
        pd.testing.assert_series_equal(view[name], copy[name])
    assert view._whole is None
    first, again = view["f01"], view["f01"]  # a column is served once: each call its own array
    assert not np.shares_memory(first.to_numpy(), again.to_numpy())


def test_rows_of_gather_fewer_neighbours_of_many_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group stays within GATHER_BYTES: on a long table, fewer columns at a time."""
    from mlpcli.data.cache import canonical

    rng = np.random.default_rng(5)
    names = [f"f{j}" for j in range(10)]
    frame = canonical(
        pd.DataFrame(rng.standard_normal((100, 10)).astype(np.float32), columns=names)
    )
    rows = np.arange(0, 100, 2)
    monkeypatch.setattr(prepare, "GATHER_BYTES", 3 * len(rows) * 4)
    view = rows_of(frame, rows)
    pd.testing.assert_series_equal(view["f0"], frame.iloc[rows]["f0"])
    assert list(view._group) == ["f1", "f2"]


def test_rows_of_no_rows_gives_empty_columns() -> None:
    """No rows of the row-major matrix: each column is empty (the gather's width is not a
    division by zero)."""
    from mlpcli.data.cache import canonical

    frame = canonical(pd.DataFrame(np.zeros((10, 4), np.float32), columns=list("abcd")))
    view = RowsOf(frame, np.array([], dtype=np.intp))
    for name in "abcd":
        pd.testing.assert_series_equal(view[name], frame.iloc[[]][name])
