"""data/polars_csv: polars' parse of a text table gives the frame one pandas call gives (or hands
the table back to pandas), on the tables built to trip pyarrow's (test_arrow.CASES) and more."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_arrow import CASES, HEAD, LATE, _rows

from mlpcli.data import cache, polars_csv, read

pytest.importorskip("polars")
pytest.importorskip("pyarrow")

#: Cases whose table polars must parse itself (the others may go back to pandas).
KEPT = {
    "blocks-quotes-newlines",
    "blocks-crlf",
    "blocks-no-final-newline",
    "na-tokens-replaced",
    "ints-with-missing-late",
    "longer-rows-late",
    "long-decimals",
    "text-ids-stay-text",
    "unnamed-first",
    "tsv",
}

#: Cases polars must hand back to pandas: a cell beyond the sample that pandas types otherwise,
#: options polars does not read as pandas does, a row missing every cell but the first (it may
#: be a blank line, which pandas skips).
HANDED_BACK = {
    "int-then-float-late",
    "text-late",
    "decimal-comma",
    "bom",
    "blocks-missing",
    "quoted-na-and-empty",
}


@pytest.fixture(autouse=True)
def read_with_polars(monkeypatch: pytest.MonkeyPatch) -> None:
    """polars' reader on (it is off by default)."""
    monkeypatch.setattr(polars_csv, "READ_CSV", True)


def _both(path: Path, **options: Any) -> tuple[pd.DataFrame, pd.DataFrame, list[bool], bool]:
    """(the default read, with polars; one pandas call; whether polars' frame was kept; whether
    the two sha256 agree)."""
    used: list[bool] = []
    original = polars_csv.parse_csv

    def spy(*args: Any) -> Any:
        frame = original(*args)
        used.append(frame is not None)
        return frame

    text_columns = ["id"] if "id" in path.read_bytes()[:64].decode("utf-8", "replace") else []
    kwargs = {"sep": None, "decimal": ".", "na_values": None, **options}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(polars_csv, "parse_csv", spy)
        fast = read._parse_table(
            path, **kwargs, transpose=False, encoding=None, text_columns=text_columns
        )
    plain = read._parse_table(
        path, **kwargs, transpose=False, encoding=None, text_columns=text_columns, in_blocks=False
    )
    same_hash = fast.sha256 == plain.sha256 != ""
    return cache.canonical(fast.frame), cache.canonical(plain.frame), used, same_hash


def _assert_same(fast: pd.DataFrame, plain: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(fast, plain, check_exact=True)
    for column in fast.columns:  # NaN where NaN, the same bits elsewhere
        a, b = fast[column].to_numpy(), plain[column].to_numpy()
        if a.dtype.kind == "f":
            assert a.tobytes() == b.tobytes(), column


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"], ids=["plain", "gzip"])
def test_polars_gives_the_frame_of_one_pandas_call(case: str, suffix: str, tmp_path: Path) -> None:
    text, options, _ = CASES[case]
    data = text.encode("utf-8")
    path = tmp_path / f"t{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith("gz") else data)
    fast, plain, used, same_hash = _both(path, **options)
    _assert_same(fast, plain)
    assert same_hash
    if case in KEPT:
        assert used == [True]
    if case in HANDED_BACK:
        assert used in ([], [False])


def test_the_bench_table_gives_the_same_float32_bits(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3000, 20))
    path = tmp_path / "t.csv"
    with open(path, "w") as handle:
        handle.write("id," + ",".join(f"f{j}" for j in range(20)) + ",label\n")
        for i, row in enumerate(X):
            handle.write(f"s{i}," + ",".join(f"{v:.5f}" for v in row) + f",c{i % 3}\n")
    fast, plain, used, _ = _both(path)
    assert used == [True]
    assert fast.iloc[:, 1:-1].to_numpy().tobytes() == plain.iloc[:, 1:-1].to_numpy().tobytes()


def test_float64_cells_round_to_float32_as_numpy_casts_them(tmp_path: Path) -> None:
    """Cells whose float64 value lies exactly between two float32 values (and a hair off it),
    beyond float32's range, subnormal: polars casts float64 to float32 on its threads, and
    must give NumPy's bits (parsing straight to float32 would round some differently)."""
    one = np.float32(1.0)
    halfway = (float(one) + float(np.nextafter(one, np.float32(2)))) / 2
    cells = [
        repr(halfway),
        f"{halfway:.40f}",
        f"{halfway:.25f}1",  # just above the midpoint, beyond float64's digits
        "3.5e38",
        "-1e39",
        "1e-42",
        "1.1754942e-38",
        "0.1",
    ]
    text = "id,x\n" + "".join(f"S{i},{c}\n" for i, c in enumerate(cells * 50))
    path = tmp_path / "t.csv"
    path.write_text(text)
    fast, plain, used, _ = _both(path)
    assert used == [True]
    _assert_same(fast, plain)


def test_parsing_straight_to_float32_would_round_these_cells_otherwise() -> None:
    """Why polars parses float64 and casts (polars_csv's docstring): straight to float32 it
    rounds a cell near a float32 midpoint once, pandas' path twice, to another float32."""
    import polars as pl

    one = np.float32(1.0)
    halfway = (float(one) + float(np.nextafter(one, np.float32(2)))) / 2
    text = f"x\n{halfway!r}\n{halfway:.25f}1\n"
    straight = pl.read_csv(text.encode(), schema={"x": pl.Float32})["x"].to_numpy()
    pandas_way = pd.read_csv(io.StringIO(text))["x"].to_numpy().astype(np.float32)
    assert (straight.view(np.uint32) != pandas_way.view(np.uint32)).all()


def test_booleans_go_back_to_pandas(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,flag,x\n" + "".join(f"S{i},{i % 2 == 0},{i}\n" for i in range(300)))
    fast, plain, used, _ = _both(path)
    _assert_same(fast, plain)
    assert used == [False]


@pytest.mark.parametrize(
    "tail",
    ["S1,2\n", "S1,2,3,4\n", "\n\nS1,2,3\n", "S1,1e5,2\n", 'S1,"2.5",3\n'],
    ids=["short-row", "long-row", "blank-lines", "exponent", "quoted-number"],
)
def test_rows_that_trip_parsers_give_pandas_frame_or_message(tail: str, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,x,n\n" + "".join(f"S{i},{i / 4},{i}\n" for i in range(300)) + tail)
    try:
        plain = read._parse_table(
            path, None, ".", None, False, None, text_columns=["id"], in_blocks=False
        )
    except Exception as error:
        with pytest.raises(type(error), match=str(error)[:40].replace("(", r"\(")):
            read._parse_table(path, None, ".", None, False, None, text_columns=["id"])
        return
    fast, _, _, _ = _both(path)
    _assert_same(fast, cache.canonical(plain.frame))


@pytest.mark.parametrize(
    ("rows", "kept"),
    [
        ("S1,1,2\r\nS2,3,4\r\n", True),
        ("S1,1,2\n\nS2,3,4\n", False),
        ("S1,1,2\n  \nS2,3,4\n", False),
        ("S1,1,2\n\t\nS2,3,4\n", False),
        ("S1,1,2\r\n\r\nS2,3,4\n", False),
        ("S1,1,2\rS2,3,4\n", False),
        ("S1,1,2\nS2,3,4\r", False),
        ('S1,1,2\n"S 2",3,4\n', True),
    ],
    ids=["crlf", "blank", "spaces", "tab", "blank-crlf", "lone-cr", "final-cr", "quoted"],
)
@pytest.mark.parametrize("block_bytes", [9, 23, 1 << 20], ids=["9", "23", "1M"])
def test_lines_pandas_skips_or_splits_send_the_table_to_pandas(
    rows: str, kept: bool, block_bytes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blank and whitespace-only lines (pandas skips them, polars makes rows of missing cells)
    and lone carriage returns (line ends to pandas) are found wherever the blocks cut them."""
    monkeypatch.setattr(polars_csv, "BLOCK_BYTES", block_bytes)
    path = tmp_path / "t.csv"
    head = "id,x,n\n" + "".join(f"S{i},{i},{i}\n" for i in range(50))
    path.write_bytes((head + rows).encode())
    fast, plain, used, same_hash = _both(path)
    _assert_same(fast, plain)
    assert used == [kept] and same_hash


def test_polars_reads_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Off by default (READ_CSV False, `MLPCLI_POLARS_READ` unset); when on, a forced one pandas
    call (`in_blocks=False`, the fallback) and stdin still go to pandas."""
    path = tmp_path / "t.csv"
    path.write_text(HEAD + _rows(LATE))
    called: list[bool] = []
    original = polars_csv.parse_csv
    monkeypatch.setattr(polars_csv, "parse_csv", lambda *a: called.append(True) or original(*a))
    on = read.read_table(path).frame
    assert called == [True]
    called.clear()
    read._parse_table(path, None, ".", None, False, None, in_blocks=False)
    read.read_table("-", stdin=io.BytesIO(path.read_bytes()))
    monkeypatch.setattr(polars_csv, "READ_CSV", False)
    pd.testing.assert_frame_equal(read.read_table(path).frame, on)
    assert called == []


def test_the_switch_is_off_unless_the_environment_says_1(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "from mlpcli.data import polars_csv; print(polars_csv.READ_CSV)"
    for value, expected in (("1", "True"), ("0", "False"), ("", "False")):
        env = {**os.environ, "MLPCLI_POLARS_READ": value}
        found = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert found.stdout.strip() == expected


def test_the_float_matrix_is_a_whole_array_of_the_table_rows(tmp_path: Path) -> None:
    """prepare writes the features over the table's own matrix (`prepare._table_matrix`)."""
    from mlpcli import prepare

    path = tmp_path / "t.csv"
    path.write_text("id,x,y\n" + "".join(f"S{i},{i / 3},{i / 7}\n" for i in range(LATE)))
    frame = read.read_table(path, text_columns=["id"]).frame
    found = prepare._table_matrix(frame, np.dtype(np.float32))
    assert found is not None
    matrix, names = found
    assert matrix.shape == (LATE, 2) and names == ["x", "y"]
