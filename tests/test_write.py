"""data/write: the output format from the file name, CSV text, and the staged table writer."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli.data import arrow, write
from mlpcli.errors import UsageError


@pytest.fixture(params=[True, False], ids=["arrow", "numpy"])
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Each test twice: with pyarrow's formatting (skipped when it is not installed) and with
    the plain NumPy path."""
    if request.param:
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(arrow, "USE_ARROW", request.param)
    return bool(request.param)


@pytest.mark.parametrize("sep", [",", "\t", ";", "|"], ids=["csv", "tsv", "semicolon", "pipe"])
def test_csv_text_writes_what_pandas_writes(sep: str, fast_path: bool) -> None:
    frame = pd.DataFrame(
        {
            "id": pd.array(["a", 'say "hi"', "x,y", "tab\there", None, "line\nbreak"], dtype="str"),
            "label": np.array(["p", "q", "p", "q", "p", "q"], dtype=object),
            "row": np.arange(1, 7),
            "p32": np.array([0.1, 1 / 3, 2.5e-10, 1.0, 0.0, np.nan], dtype=np.float32),
            "x64": [1e16, -0.0, 123456789.123, np.inf, 1e-5, np.nan],
            "flag": [True, False, True, True, False, False],
            "odd,name": [1.5] * 6,
        }
    )
    expected = frame.to_csv(sep=sep, index=False, lineterminator="\n")
    assert write.csv_text(frame, sep) == expected
    assert write.csv_text(frame.iloc[2:], sep, header=False) == expected.split("\n", 3)[3]
    assert write.csv_text(frame.iloc[:0], sep) == expected.split("\n", 1)[0] + "\n"


def _awkward_floats(dtype: type[np.floating], n: int, seed: int) -> np.ndarray:
    """Magnitudes from 1e-9 to 1e21, full and short decimals, both signs, integers, zeros of
    both signs, NaN, infinities and the bounds of `ARROW_SAME_TEXT`; and a fifth of tiny ones,
    down to the subnormals, with the decimal bounds where pyarrow's notation changes."""
    rng = np.random.default_rng(seed)
    v = rng.random(n) * 10.0 ** rng.integers(-9, 21, n)
    digits = rng.integers(0, 17, n)
    short = rng.random(n) < 0.5
    v[short] = np.round(v[short] * 10.0 ** digits[short]) / 10.0 ** digits[short]
    v[rng.random(n) < 0.5] *= -1
    bounds = [b * s for b in (1e-4, 1e6, 1e10, 1e16) for s in (1, -1)]
    special = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -3.0, 2.0**24, *bounds]
    tiny = 10.0 ** rng.uniform(-324, -4, n // 5) * rng.choice([1.0, -1.0], n // 5)
    edges = [e * m for e in (1e-5, 1e-6, 1e-7, 1e-10) for m in (1.0, 2.0, 0.9999999, 1.0000001)]
    subnormal = np.finfo(dtype).smallest_subnormal
    with np.errstate(over="ignore"):
        out = np.concatenate([v, special, tiny, edges]).astype(dtype)
    out = np.concatenate([out, np.array([subnormal, -subnormal, 3 * subnormal], dtype)])
    out[::7] = np.trunc(out[::7])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_pyarrow_formatting_gives_the_numpy_text_of_every_kind_of_float(
    dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"a": _awkward_floats(dtype, 200_000, 1), "b": np.float32(0.5)})
    frame["row"] = np.arange(len(frame)) - 7
    frame["id"] = [f"s{i}" for i in range(len(frame))]
    fast = write.csv_text(frame)
    monkeypatch.setattr(arrow, "USE_ARROW", False)
    assert fast == write.csv_text(frame)


@pytest.mark.parametrize(
    ("name", "sep"),
    [("p.csv", ","), ("p.TSV", "\t"), ("p.txt", "\t"), ("p.csv.gz", ","), ("p.tsv.xz", "\t")],
)
def test_output_format_takes_the_separator_from_the_name(name: str, sep: str) -> None:
    assert write.output_format(name)[0] == sep


def test_an_unknown_table_extension_names_the_option_and_the_choices() -> None:
    with pytest.raises(
        UsageError, match=r"^--out-x 'p\.json': cannot tell the table format .*\.csv"
    ):
        write.output_format("p.json", "--out-x")


def test_table_writer_appends_chunks_and_compresses(tmp_path: Path) -> None:
    out = tmp_path / "p.csv.gz"
    frame = pd.DataFrame({"id": ["a", "b"], "p": [0.25, 0.5]})
    with write.table_writer(str(out)) as append:
        append(frame.iloc[:1], True)
        append(frame.iloc[1:], False)
    with gzip.open(out, "rt") as handle:
        assert handle.read() == "id,p\na,0.25\nb,0.5\n"


def test_table_writer_leaves_no_file_when_the_block_fails(tmp_path: Path) -> None:
    out = tmp_path / "p.tsv"
    with pytest.raises(RuntimeError), write.table_writer(str(out)) as append:
        append(pd.DataFrame({"x": [1]}), True)
        raise RuntimeError("a later chunk is bad")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_text_columns_without_cells_to_quote_give_the_same_text(fast_path: bool) -> None:
    frame = pd.DataFrame(
        {
            "sample": pd.array(["s1", None, "s3", "é ü", ""], dtype="str"),
            "prediction": np.array(["c0", "c1", "c0", "c2", "c1"], dtype=object),
            "mixed": np.array([1, "a", None, 2.5, "b"], dtype=object),
            "flag": [True, False, True, False, True],
            "p": np.array([0.25, 1.0, 3e-7, np.nan, 0.5], dtype=np.float32),
        }
    )
    assert write.csv_text(frame) == frame.to_csv(index=False, lineterminator="\n")


def test_a_text_column_in_several_arrow_chunks_gives_the_same_text(fast_path: bool) -> None:
    """pandas' `str` columns joined from batches (a table read by pyarrow, `pd.concat`) hold
    a chunked arrow array: pyarrow's path must format it as one."""
    sample = pd.concat([pd.Series(["s1", "s2"], dtype="str")] * 3, ignore_index=True)
    if fast_path:
        assert sample.array._pa_array.num_chunks == 3
    frame = pd.DataFrame({"sample": sample, "p": np.linspace(0, 1, 6, dtype=np.float32)})
    assert write.csv_text(frame) == frame.to_csv(index=False, lineterminator="\n")
