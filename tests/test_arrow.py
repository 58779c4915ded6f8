"""data/arrow: pyarrow's parse of a text table gives the frame one pandas call gives (or hands
the table back to pandas), on tables built to trip it."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_cache import BLOCK_CASES

from mlpcli.data import arrow, cache, read
from mlpcli.errors import DataError

pytest.importorskip("pyarrow")


def _rows(n: int) -> str:
    return "".join(f"S{i},{i * 0.25 - 3},{i % 5},c{i % 3}\n" for i in range(n))


HEAD = "id,x,n,label\n"

#: Rows that fill more than the 64 KB sample pandas types the columns from.
LATE = 5000

#: name -> (text, reading options, whether pyarrow's parse is kept). Tables whose doubtful cell
#: lies beyond the 64 KB sample must be handed back to pandas.
CASES: dict[str, tuple[str, dict[str, Any], bool]] = {
    **{f"blocks-{k}": (v, {}, True) for k, v in BLOCK_CASES.items() if "decimal" not in k},
    "decimal-comma": (BLOCK_CASES["decimal-comma"], {"sep": ";", "decimal": ","}, True),
    "bom": ("\ufeff" + HEAD + _rows(300), {}, True),
    "quoted-na-and-empty": (HEAD + _rows(200) + 'S1,"NA","",""\nS2,?,.,null\n', {}, True),
    "na-tokens-replaced": (
        HEAD + _rows(200) + "S1,missing,2,x\n",
        {"na_values": ["missing"]},
        True,
    ),
    "ints-with-missing-late": (HEAD + _rows(LATE) + "S1,1,,c1\n", {}, True),
    "int-then-float-late": (HEAD + _rows(LATE) + "S1,1,2.5,c1\n", {}, False),
    "longer-rows-late": (  # more rows than the sample's bytes per row promise: grows
        HEAD + _rows(LATE) + "".join(f"S{i}{'x' * 200},{i / 7!r},{i},c1\n" for i in range(3000)),
        {},
        True,
    ),
    "text-late": (HEAD + _rows(LATE) + "S1,oops,2,c1\n", {}, False),
    "spaces-around-numbers": (HEAD + _rows(200) + "S1, 1.5 ,2,c1\n", {}, True),
    "inf-and-signs": (
        HEAD + _rows(200) + "S1,inf,+3,c1\nS2,-inf,-4,c2\nS3,+1.5e3,0,c0\n",
        {},
        False,
    ),
    "long-decimals": (
        HEAD
        + "".join(
            f"S{i},{v!r},{i},c1\n" for i, v in enumerate(np.random.default_rng(0).random(300))
        )
        + "S9,0.1000000000000000055511151231257827,1,c1\n",
        {},
        True,
    ),
    "booleans": (
        "id,flag,x\n" + "".join(f"S{i},{'True' if i % 2 else 'false'},{i}\n" for i in range(300)),
        {},
        True,
    ),
    "booleans-missing-late": (
        "id,flag,x\n"
        + "".join(f"S{i},{'True' if i % 2 else 'False'},{i}\n" for i in range(LATE))
        + "S1,,1\n",
        {},
        False,
    ),
    "dates-are-text": (
        "id,day,x\n" + "".join(f"S{i},2020-01-{i % 28 + 1:02d},{i}\n" for i in range(300)),
        {},
        True,
    ),
    "huge-ints": (
        "id,big,x\n" + "".join(f"S{i},{2**64 - 1 - i},{i}\n" for i in range(300)),
        {},
        False,
    ),
    "all-missing-column": ("id,empty,x\n" + "".join(f"S{i},,{i}\n" for i in range(300)), {}, True),
    "text-ids-stay-text": ("id,x\n" + "".join(f"{i:03d},{i}\n" for i in range(300)), {}, True),
    "unnamed-first": (",x,y\n" + "".join(f"r{i},{i},{i * 2}\n" for i in range(300)), {}, True),
    "tsv": (
        "id\tx\tlabel\n" + "".join(f"S{i}\t{i / 3}\tc{i % 2}\n" for i in range(300)),
        {"sep": "\t"},
        True,
    ),
    # Tables without a double quote, which a plain file's byte ranges read (see the fixture):
    "crlf": ((HEAD + _rows(600)).replace("\n", "\r\n"), {}, True),
    "no-final-newline": (HEAD + _rows(600).rstrip("\n"), {}, True),
    "blank-lines": (  # fewer records than newlines: each range's rows closed up
        HEAD + "\n".join(_rows(200) for _ in range(3)) + "\n\n",
        {},
        True,
    ),
    "smaller-than-a-block": (HEAD + _rows(3), {}, True),
    "one-row": (HEAD + _rows(1), {}, True),
    "missing-cells": (
        HEAD
        + "".join(
            f"S{i},{'' if i % 7 == 0 else i / 8},{i % 5},{'NA' * (i % 3 == 0)}\n"
            for i in range(600)
        ),
        {},
        True,
    ),
    "ints-with-missing-in-every-range": (
        HEAD + "".join(f"S{i},{i},{'' if i % 150 == 149 else i},c1\n" for i in range(600)),
        {},
        True,
    ),
    "quoted-newline-early": (
        HEAD + 'S0,1.5,2,"two\nlines"\n' + _rows(600).replace('"', ""),
        {},
        True,
    ),
    "quoted-newline-late": (  # in the last range: cut before it, parsed with quotes
        HEAD + _rows(600) + 'S0,1.5,2,"two\nlines"\n' + _rows(20),
        {},
        True,
    ),
    "floats-only": (
        "a,b,c\n" + "".join(f"{i / 3},{-i / 7},{i * 1e-3}\n" for i in range(600)),
        {},
        True,
    ),
}


@pytest.fixture(autouse=True, params=["stream", "ranges"])
def read_with_arrow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """pyarrow's reader on (it is off by default), in blocks of a few hundred records, so the
    frame is joined from many; a plain file through one stream, or in 3 byte ranges (their
    records counted a few KB at a time)."""
    monkeypatch.setattr(arrow, "READ_CSV", True)
    monkeypatch.setattr(arrow, "BLOCK_BYTES", 4096)
    ranges = request.param == "ranges"
    monkeypatch.setattr(arrow, "SPLIT_FROM_BYTES", 0 if ranges else 1 << 60)
    monkeypatch.setattr(arrow, "RANGES", 3)
    monkeypatch.setattr(arrow, "COUNT_BYTES", 3000)
    return str(request.param)


def _both(
    path: Path, ranged: list[str] | None = None, **options: Any
) -> tuple[pd.DataFrame, pd.DataFrame, list[bool]]:
    """(the default read, with pyarrow; one pandas call; whether pyarrow's frame was kept);
    `ranged` gets what each byte-range read did: "frame", "quoted" (None) or "raised"."""
    used: list[bool] = []
    original = arrow.parse_csv
    original_ranges = arrow._read_ranges

    def spy(*args: Any) -> Any:
        frame = original(*args)
        used.append(frame is not None)
        return frame

    def ranges_spy(*args: Any) -> Any:
        try:
            frame = original_ranges(*args)
        except Exception:
            (ranged if ranged is not None else []).append("raised")
            raise
        (ranged if ranged is not None else []).append("quoted" if frame is None else "frame")
        return frame

    text_columns = ["id"] if "id" in path.read_bytes()[:64].decode("utf-8", "replace") else []
    kwargs = {"sep": None, "decimal": ".", "na_values": None, **options}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(arrow, "parse_csv", spy)
        patch.setattr(arrow, "_read_ranges", ranges_spy)
        fast = read._parse_table(
            path, **kwargs, transpose=False, encoding=None, text_columns=text_columns
        )
    plain = read._parse_table(
        path, **kwargs, transpose=False, encoding=None, text_columns=text_columns, in_blocks=False
    )
    return cache.canonical(fast.frame), cache.canonical(plain.frame), used


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"], ids=["plain", "gzip"])
def test_pyarrow_gives_the_frame_of_one_pandas_call(
    case: str, suffix: str, tmp_path: Path, read_with_arrow: str
) -> None:
    text, options, kept = CASES[case]
    data = text.encode("utf-8")
    path = tmp_path / f"t{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith("gz") else data)
    ranged: list[str] = []
    fast, plain, used = _both(path, ranged, **options)
    pd.testing.assert_frame_equal(fast, plain, check_exact=True)
    for column in fast.columns:  # NaN where NaN, the same bits elsewhere
        a, b = fast[column].to_numpy(), plain[column].to_numpy()
        if a.dtype.kind == "f":
            assert a.tobytes() == b.tobytes(), column
    assert used == [kept]
    if read_with_arrow == "stream" or suffix != ".csv":  # compressed: through the stream
        assert ranged == []
    elif _cut_before_a_quote(path):  # a quoted field might hold a newline: not cut there
        assert ranged == ["quoted"]
    else:
        assert ranged == ["frame"] if kept else ranged in ([], ["raised"])  # [] if declined


def _cut_before_a_quote(path: Path) -> bool:
    """Whether a range but the last holds a double quote."""

    data = path.read_bytes()
    with open(path, "rb") as handle:
        cuts = arrow._cuts(handle.fileno(), len(data), arrow.RANGES)
    return b'"' in data[: cuts[-2]]


def test_the_bench_table_gives_the_same_float32_bits(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3000, 20))
    path = tmp_path / "t.csv"
    with open(path, "w") as handle:
        handle.write("id," + ",".join(f"f{j}" for j in range(20)) + ",label\n")
        for i, row in enumerate(X):
            handle.write(f"s{i}," + ",".join(f"{v:.5f}" for v in row) + f",c{i % 3}\n")
    fast, plain, used = _both(path)
    assert used == [True]
    assert fast.iloc[:, 1:-1].to_numpy().tobytes() == plain.iloc[:, 1:-1].to_numpy().tobytes()


@pytest.mark.parametrize(
    ("options", "why"),
    [({"thousands": ","}, "thousands"), ({"encoding": "latin-1"}, "encoding")],
    ids=["thousands", "latin-1"],
)
def test_options_pyarrow_lacks_go_to_pandas(
    options: dict[str, Any], why: str, tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    path.write_text('id;x\nS1;"1,234.5"\nS2;7\n' if why == "thousands" else "id,x\nS1,1\n")
    called: list[bool] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(arrow, "parse_csv", lambda *a: called.append(True))
        frame = read.read_table(path, sep=";" if why == "thousands" else None, **options).frame
    assert called == []
    assert len(frame) >= 1


def test_a_ragged_row_gets_pandas_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n" + "1,2\n" * 200 + "1,2,3\n" + "1,2\n" * 20, encoding="utf-8")
    with pytest.raises(DataError, match="line 202 has 3 fields but earlier lines have 2"):
        read.read_table(path)


def test_pyarrow_reads_the_tables_of_from_bytes_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READ_CSV None (the default): pyarrow from `FROM_BYTES`, unless the reader is forced
    (`READ_IN_BLOCKS`); off with READ_CSV False or USE_ARROW False."""
    path = tmp_path / "t.csv"
    path.write_text(HEAD + _rows(20))
    called: list[bool] = []
    original = arrow.parse_csv
    monkeypatch.setattr(arrow, "parse_csv", lambda *a: called.append(True) or original(*a))
    monkeypatch.setattr(arrow, "READ_CSV", None)
    monkeypatch.setattr(arrow, "FROM_BYTES", path.stat().st_size + 1)
    small = read.read_table(path).frame
    assert called == []
    monkeypatch.setattr(arrow, "FROM_BYTES", path.stat().st_size)
    pd.testing.assert_frame_equal(read.read_table(path).frame, small)
    assert called == [True]
    called.clear()
    monkeypatch.setattr(read, "READ_IN_BLOCKS", True)
    pd.testing.assert_frame_equal(read.read_table(path).frame, small)
    assert called == []
    monkeypatch.setattr(read, "READ_IN_BLOCKS", None)
    monkeypatch.setattr(arrow, "READ_CSV", False)
    assert len(read.read_table(path).frame) == 20
    assert called == []
    monkeypatch.setattr(arrow, "READ_CSV", True)
    monkeypatch.setattr(arrow, "USE_ARROW", False)
    assert len(read.read_table(path).frame) == 20
    assert called == []
    assert arrow.modules() is None


def test_the_float_matrix_is_a_whole_array_of_the_table_rows(tmp_path: Path) -> None:
    """prepare writes the features over the table's own matrix when the frame's float columns
    view one writable (n_rows, k) array (`prepare._table_matrix`)."""
    from mlpcli import prepare

    path = tmp_path / "t.csv"
    path.write_text(HEAD + _rows(LATE))
    frame = read.read_table(path, text_columns=["id"]).frame
    found = prepare._table_matrix(frame, np.dtype(np.float32))
    assert found is not None
    matrix, names = found
    assert matrix.shape == (LATE, 1) and names == ["x"]  # n is int64, as pandas types it


@pytest.mark.parametrize("checksum", [True, False], ids=["checksum", "no-checksum"])
def test_the_digest_is_of_the_whole_file(
    checksum: bool, tmp_path: Path, read_with_arrow: str
) -> None:
    """Byte ranges leave the stream unread: the digest is computed from the file alongside."""
    import hashlib

    path = tmp_path / "t.csv"
    path.write_text(HEAD + _rows(LATE))
    table = read._parse_table(
        path, None, ".", None, False, None, text_columns=["id"], checksum=checksum
    )
    assert table.sha256 == (hashlib.sha256(path.read_bytes()).hexdigest() if checksum else "")


def test_a_header_only_file_gets_the_no_rows_message(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEAD)
    with pytest.raises(DataError, match="has a header but no data rows"):
        read.read_table(path)
