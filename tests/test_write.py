"""data/write: the output format from the file name, CSV text, and the staged table writer."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli.data import write
from mlpcli.errors import UsageError


@pytest.mark.parametrize("sep", [",", "\t"], ids=["csv", "tsv"])
def test_csv_text_writes_what_pandas_writes(sep: str) -> None:
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
