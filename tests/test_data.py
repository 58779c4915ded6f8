"""Tests for mlpcli.data: reading tables, choosing columns, detecting the task, sample data."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import importlib.util
import io
import logging
import lzma
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli import data
from mlpcli.data import (
    CODECS,
    DEFAULT_NA_VALUES,
    as_label_strings,
    detect_task,
    drop_missing_targets,
    read_table,
    select_columns,
)
from mlpcli.errors import DataError, MlpcliError, UsageError

REPO = Path(__file__).resolve().parents[1]
MICE = REPO.parent / "shared" / "data" / "mice_protein_expression" / "Data_Cortex_Nuclear.csv.gz"

SIMPLE = "a,b,name\n1.5,2,x\n3.25,4,y\n"


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raises(kind: type[MlpcliError], *fragments: str) -> Callable[[Callable[[], object]], str]:
    """Run a call, check the error class (its exit code) and that the message has each fragment."""

    def check(call: Callable[[], object]) -> str:
        with pytest.raises(MlpcliError) as info:
            call()
        assert type(info.value) is kind, f"{type(info.value).__name__}: {info.value}"
        message = str(info.value)
        assert "\n" not in message
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in {message!r}"
        return message

    return check


def assert_simple(frame: pd.DataFrame) -> None:
    """The 2 x 3 table of SIMPLE, with float columns cast to float32."""
    assert list(frame.columns) == ["a", "b", "name"]
    assert frame["a"].dtype == np.float32
    assert frame["a"].tolist() == [1.5, 3.25]
    assert frame["b"].dtype == np.int64
    assert frame["name"].tolist() == ["x", "y"]


# --------------------------------------------------------------------------------------------
# Reading: delimiters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "sep", "expected"),
    [
        ("t.csv", ",", ","),
        ("t.tsv", "\t", "\t"),
        ("t.tab", "\t", "\t"),
        ("t.txt", ";", ";"),
        ("t.txt", "|", "|"),
        ("t.txt", "\t", "\t"),
        ("t.txt", ",", ","),
        ("t.dat", " ", r"\s+"),
    ],
    ids=["csv", "tsv", "tab", "txt-semicolon", "txt-pipe", "txt-tab", "txt-comma", "dat-space"],
)
def test_delimiter_from_extension_or_sniffed(
    tmp_path: Path, filename: str, sep: str, expected: str
) -> None:
    path = write(tmp_path / filename, SIMPLE.replace(",", sep))
    table = read_table(path)
    assert table.sep == expected
    assert_simple(table.frame)
    assert table.source == str(path)
    assert table.sha256 == sha(path)


ALIGNED = "a    b  name\n1.5  2  x\n3.25 4  y\n"


def test_space_separated_columns_may_be_aligned(tmp_path: Path) -> None:
    assert_simple(read_table(write(tmp_path / "t.txt", ALIGNED)).frame)
    assert_simple(read_table(write(tmp_path / "t.csv", ALIGNED), sep="space").frame)


def test_aligned_file_named_csv_suggests_space(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ALIGNED)
    raises(DataError, "t.csv", "--sep space")(lambda: read_table(path))


@pytest.mark.parametrize(
    ("spelling", "content"),
    [
        ("\\t", SIMPLE.replace(",", "\t")),
        ("tab", SIMPLE.replace(",", "\t")),
        ("\t", SIMPLE.replace(",", "\t")),
        ("TAB", SIMPLE.replace(",", "\t")),
        (";", SIMPLE.replace(",", ";")),
        ("semicolon", SIMPLE.replace(",", ";")),
        ("comma", SIMPLE),
        ("pipe", SIMPLE.replace(",", "|")),
        (":", SIMPLE.replace(",", ":")),
    ],
    ids=[
        "backslash-t",
        "tab",
        "tab-char",
        "TAB",
        "semicolon-char",
        "semicolon",
        "comma",
        "pipe",
        "any-char",
    ],
)
def test_sep_overrides_the_extension(tmp_path: Path, spelling: str, content: str) -> None:
    # A .csv name says ',' but the explicit separator wins.
    assert_simple(read_table(write(tmp_path / "t.csv", content), sep=spelling).frame)


def test_unknown_sep_name_lists_choices(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", SIMPLE)
    raises(UsageError, "separator", "'colon'", "semicolon")(lambda: read_table(path, sep="colon"))


# --------------------------------------------------------------------------------------------
# Reading: compression, stdin
# --------------------------------------------------------------------------------------------


def _zip(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("table.csv", payload)
    return buffer.getvalue()


def _zstd(payload: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard", reason="zstandard is not installed")
    return bytes(zstandard.ZstdCompressor().compress(payload))


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    ".zip": _zip,
    ".zst": _zstd,
}


def test_every_codec_has_a_test_compressor() -> None:
    assert set(COMPRESSORS) == set(CODECS)


@pytest.mark.parametrize("suffix", sorted(CODECS), ids=sorted(CODECS))
def test_compressed_by_extension(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"t.csv{suffix}", COMPRESSORS[suffix](SIMPLE.encode()))
    table = read_table(path)
    assert_simple(table.frame)
    assert table.sha256 == sha(path)  # digest of the compressed bytes, as stored


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"], ids=lambda s: s[1:])
def test_compressed_inner_extension_gives_separator(tmp_path: Path, suffix: str) -> None:
    payload = SIMPLE.replace(",", "\t").encode()
    table = read_table(write(tmp_path / f"t.tsv{suffix}", COMPRESSORS[suffix](payload)))
    assert table.sep == "\t"
    assert_simple(table.frame)


@pytest.mark.skipif(
    importlib.util.find_spec("zstandard") is not None, reason="zstandard is installed"
)
def test_zstd_without_zstandard_says_what_to_install(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv.zst", b"\x28\xb5\x2f\xfd" + b"\0" * 20)
    raises(DataError, "t.csv.zst", "pip install zstandard")(lambda: read_table(path))


def test_stdin_plain() -> None:
    payload = SIMPLE.encode()
    table = read_table("-", stdin=io.BytesIO(payload))
    assert table.source == "<stdin>"
    assert table.sha256 == hashlib.sha256(payload).hexdigest()
    assert_simple(table.frame)


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"], ids=lambda s: s[1:])
def test_stdin_compression_from_magic_bytes(suffix: str) -> None:
    payload = COMPRESSORS[suffix](SIMPLE.encode())
    table = read_table("-", stdin=io.BytesIO(payload))
    assert table.sha256 == hashlib.sha256(payload).hexdigest()
    assert_simple(table.frame)


def test_stdin_sniffs_the_separator() -> None:
    table = read_table("-", stdin=io.BytesIO(SIMPLE.replace(",", ";").encode()))
    assert table.sep == ";"
    assert_simple(table.frame)


@pytest.mark.slow
def test_large_plain_file_and_its_gzip_read_the_same(tmp_path: Path) -> None:
    # Above 5 MB pandas splits a plain file across threads; gzip goes through our stream.
    rng = np.random.default_rng(0)
    values = rng.standard_normal((70_000, 8)).round(6)
    text = pd.DataFrame(values, columns=[f"f{i}" for i in range(8)]).to_csv(index=False)
    plain = write(tmp_path / "big.csv", text)
    packed = write(tmp_path / "big.csv.gz", gzip.compress(text.encode(), compresslevel=1))
    assert plain.stat().st_size > 5 * 1024 * 1024
    a, b = read_table(plain), read_table(packed)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.frame.shape == (70_000, 8)
    assert (a.frame.dtypes == np.float32).all()
    np.testing.assert_array_equal(a.frame.to_numpy(), values.astype(np.float32))
    assert (a.sha256, b.sha256) == (sha(plain), sha(packed))


def test_plain_files_are_streamed_not_handed_over_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One read feeds parser and hash; by path pandas would use 2.2x the peak memory.
    seen: list[object] = []
    read_csv = pd.read_csv

    def spy(source: object, **kwargs: object) -> pd.DataFrame:
        seen.append(source)
        return read_csv(source, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(pd, "read_csv", spy)
    table = read_table(write(tmp_path / "t.csv", SIMPLE))
    assert_simple(table.frame)
    assert len(seen) == 1 and not isinstance(seen[0], str | Path)


def test_checksum_can_be_skipped(tmp_path: Path) -> None:
    assert read_table(write(tmp_path / "t.csv", SIMPLE), checksum=False).sha256 == ""


# --------------------------------------------------------------------------------------------
# Reading: encodings, quoting, missing values, decimal comma
# --------------------------------------------------------------------------------------------


def test_bom_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", b"\xef\xbb\xbf" + SIMPLE.replace("\n", "\r\n").encode())
    frame = read_table(path).frame
    assert_simple(frame)
    assert frame["name"].tolist() == ["x", "y"]  # no stray "\r"


def test_quoted_fields(tmp_path: Path) -> None:
    content = 'id,note,v\n1,"Smith, J",1.5\n2,"say ""hi""",2.5\n3,"two\nlines",3.5\n'
    frame = read_table(write(tmp_path / "t.csv", content)).frame
    assert frame["note"].tolist() == ["Smith, J", 'say "hi"', "two\nlines"]
    assert frame["v"].tolist() == [1.5, 2.5, 3.5]


NA_TOKENS = ("", "NA", "N/A", "NaN", "nan", "null", "?", ".")


def test_default_missing_tokens_are_exactly_these() -> None:
    assert DEFAULT_NA_VALUES == NA_TOKENS


@pytest.mark.parametrize("token", NA_TOKENS, ids=lambda t: repr(t))
def test_default_missing_tokens(tmp_path: Path, token: str) -> None:
    frame = read_table(write(tmp_path / "t.csv", f"x,s\n1.5,a\n{token},{token}\n")).frame
    assert frame["x"].dtype == np.float32
    assert np.isnan(frame["x"].iloc[1])
    assert pd.isna(frame["s"].iloc[1])


@pytest.mark.parametrize("token", ["NULL", "None", "-", "n/a", "missing"])
def test_other_tokens_are_not_missing(tmp_path: Path, token: str) -> None:
    frame = read_table(write(tmp_path / "t.csv", f"s\n{token}\nb\n")).frame
    assert frame["s"].tolist() == [token, "b"]


def test_na_values_replace_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "x,s\n1,NA\n-999,b\n3,c\n")
    frame = read_table(path, na_values=["-999"]).frame
    assert frame["x"].isna().tolist() == [False, True, False]
    assert frame["s"].tolist() == ["NA", "b", "c"]


def test_decimal_comma(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "x;y;s\n1,5;-2,25;a\n3,0;4;b\n")
    frame = read_table(path, sep=";", decimal=",").frame
    assert frame["x"].tolist() == [1.5, 3.0]
    assert frame["y"].tolist() == [-2.25, 4.0]
    assert frame["x"].dtype == np.float32


def test_sniffed_semicolon_with_decimal_commas_warns_but_keeps_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "t.txt", "x;y\n1,5;2,5\n3,25;4,75\n")
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        frame = read_table(path).frame
    assert "--decimal ," in caplog.text and "t.txt" in caplog.text
    assert frame["x"].tolist() == ["1,5", "3,25"]  # never silently converted


def test_latin1_needs_its_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "gene,unit\nA,\xb5M\n".encode("latin-1"))
    raises(DataError, "t.csv", "--encoding latin-1", "line 2")(lambda: read_table(path))
    assert read_table(path, encoding="latin-1").frame["unit"].tolist() == ["µM"]


def test_undecodable_byte_after_the_sniffed_part(tmp_path: Path) -> None:
    body = "".join(f"{i},x\n" for i in range(20_000))  # > 64 KiB before the bad byte
    path = write(tmp_path / "t.csv", ("a,b\n" + body).encode() + b"1,\xff\n")
    raises(DataError, "t.csv", "--encoding latin-1")(lambda: read_table(path))


def test_utf16_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", SIMPLE.encode("utf-16"))
    raises(DataError, "t.csv", "--encoding utf-16")(lambda: read_table(path))


def test_unknown_encoding_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", SIMPLE)
    raises(UsageError, "'klingon'")(lambda: read_table(path, encoding="klingon"))


# --------------------------------------------------------------------------------------------
# Reading: transpose
# --------------------------------------------------------------------------------------------


def test_transpose_numeric_matrix(tmp_path: Path) -> None:
    path = write(tmp_path / "m.tsv", ",S1,S2,S3\nG1,1.5,2,3\nG2,4,5,6.5\n".replace(",", "\t"))
    frame = read_table(path, transpose=True).frame
    assert list(frame.columns) == ["sample", "G1", "G2"]
    assert frame["sample"].tolist() == ["S1", "S2", "S3"]
    assert frame["G1"].tolist() == [1.5, 2.0, 3.0]
    assert frame["G2"].dtype == np.float32


def test_transpose_with_a_text_row_and_decimal_commas(tmp_path: Path) -> None:
    content = "gene_id;S1;S2;S3\nG1;1,5;NA;3\nsubtype;a;b;a\nG2;4;5;6,25\n"
    frame = read_table(write(tmp_path / "m.txt", content), decimal=",", transpose=True).frame
    assert list(frame.columns) == ["gene_id", "G1", "subtype", "G2"]
    assert frame["gene_id"].tolist() == ["S1", "S2", "S3"]
    assert frame["G1"].dtype == np.float32
    assert frame["G1"].isna().tolist() == [False, True, False]
    assert frame["G2"].tolist() == [4.0, 5.0, 6.25]
    assert frame["subtype"].tolist() == ["a", "b", "a"]


def test_transpose_duplicated_feature_names(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "g,S1,S2\nG1,1,2\nG1,3,4\n")
    raises(DataError, "m.csv", "'G1'", "--transpose")(lambda: read_table(path, transpose=True))


# --------------------------------------------------------------------------------------------
# Reading: errors
# --------------------------------------------------------------------------------------------


def test_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    raises(DataError, "nope.csv", "not found")(lambda: read_table(path))


def test_directory(tmp_path: Path) -> None:
    raises(DataError, str(tmp_path), "directory")(lambda: read_table(tmp_path))


@pytest.mark.parametrize(
    "content", [b"", b"\n\n", b"   \n", b"\xef\xbb\xbf"], ids=["zero", "newlines", "blank", "bom"]
)
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path / "e.csv", content)
    raises(DataError, "e.csv", "empty")(lambda: read_table(path))


def test_empty_compressed_file(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv.gz", gzip.compress(b""))
    raises(DataError, "e.csv.gz", "empty")(lambda: read_table(path))


def test_header_only(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", "a,b,c\n")
    raises(DataError, "h.csv", "no data rows")(lambda: read_table(path))


def test_one_column_under_the_wrong_separator(tmp_path: Path) -> None:
    path = write(tmp_path / "eu.csv", "a;b;c\n1;2;3\n")
    raises(DataError, "eu.csv", "--sep ';'", "3 fields")(lambda: read_table(path))


def test_one_column_under_explicit_wrong_separator(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", SIMPLE)
    raises(DataError, "t.tsv", "--sep ','")(lambda: read_table(path, sep="tab"))


def test_single_column_with_spaces_in_its_name_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "one.csv", "gene expression\n1.5\n2.5\n")
    assert read_table(path).frame["gene expression"].tolist() == [1.5, 2.5]


def test_duplicated_column_names(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,b,a,c,c\n1,2,3,4,5\n")
    raises(DataError, "d.csv", "'a'", "'c'", "duplicated")(lambda: read_table(path))


def test_ragged_row(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "a,b\n1,2\n3,4,5,6\n")
    raises(DataError, "r.csv", "line 3", "4 fields")(lambda: read_table(path))


@pytest.mark.parametrize(
    ("suffix", "content"),
    [
        (".gz", b"\x1f\x8b\x08\x00garbage-not-deflate" * 3),
        (".gz", gzip.compress(SIMPLE.encode() * 50)[:-30]),
        (".gz", b"plain text, not gzip\n"),
        (".bz2", b"BZh9 not really bzip2"),
        (".xz", b"\xfd7zXZ\x00 broken"),
        (".zip", b"PK\x03\x04 broken"),
    ],
    ids=["gz-garbage", "gz-truncated", "gz-not-gzip", "bz2", "xz", "zip"],
)
def test_corrupt_compressed_file(tmp_path: Path, suffix: str, content: bytes) -> None:
    path = write(tmp_path / f"c.csv{suffix}", content)
    raises(DataError, f"c.csv{suffix}", "Cannot decompress", "corrupt")(lambda: read_table(path))


def test_zip_with_two_members(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", SIMPLE)
        archive.writestr("b.csv", SIMPLE)
    path = write(tmp_path / "two.zip", buffer.getvalue())
    raises(DataError, "two.zip", "exactly one", "a.csv")(lambda: read_table(path))


def test_decimal_equal_to_separator(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", SIMPLE)
    raises(UsageError, "t.csv", "--sep")(lambda: read_table(path, decimal=","))


def test_decimal_must_be_one_character(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", SIMPLE)
    raises(UsageError, "--decimal")(lambda: read_table(path, decimal=",,"))


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------


@pytest.fixture
def genes() -> pd.DataFrame:
    """30 samples: an id, a batch, 12 numeric genes, a text target."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        rng.lognormal(size=(30, 12)).astype(np.float32),
        columns=[f"GENE{i:03d}" for i in range(1, 13)],
    )
    frame.insert(0, "sample_id", [f"S{i:02d}" for i in range(30)])
    frame.insert(1, "batch", ["B1", "B2", "B3"] * 10)
    frame["subtype"] = ["a", "b", "c"] * 10
    return frame


def test_default_features_leave_out_target_ids_and_dropped(genes: pd.DataFrame) -> None:
    selection = select_columns(genes, ["subtype"], ids=["sample_id"], drop=["GENE012"])
    assert selection.targets == ["subtype"]
    assert selection.ids == ["sample_id"]
    assert selection.features == ["batch"] + [f"GENE{i:03d}" for i in range(1, 12)]
    assert selection.categorical == ["batch"]
    assert selection.numeric == [f"GENE{i:03d}" for i in range(1, 12)]


def test_globs_in_features_and_drop(genes: pd.DataFrame) -> None:
    selection = select_columns(
        genes, ["subtype"], ids=["sample_id"], features=["GENE00*", "batch"], drop=["GENE00[1-3]"]
    )
    assert selection.features == ["batch"] + [f"GENE{i:03d}" for i in range(4, 10)]


@pytest.mark.parametrize("option", ["features", "drop", "categorical"])
def test_pattern_matching_nothing_is_named(genes: pd.DataFrame, option: str) -> None:
    kwargs = {option: ["PROT*"]}
    raises(DataError, "'PROT*'", "matches no column", "g.csv")(
        lambda: select_columns(genes, ["subtype"], ids=["sample_id"], source="g.csv", **kwargs)
    )


def test_unknown_feature_name_suggests(genes: pd.DataFrame) -> None:
    raises(DataError, "'GENE01'", "did you mean", "GENE010")(
        lambda: select_columns(genes, ["subtype"], features=["GENE01"])
    )


def test_missing_target_suggests_close_names(genes: pd.DataFrame) -> None:
    raises(DataError, "'subtyp'", "g.csv", "did you mean 'subtype'")(
        lambda: select_columns(genes, ["subtyp"], source="g.csv")
    )


def test_missing_target_with_nothing_close_lists_columns(genes: pd.DataFrame) -> None:
    raises(DataError, "'zzz'", "columns are: sample_id, batch")(
        lambda: select_columns(genes, ["zzz"])
    )


def test_target_equal_to_id(genes: pd.DataFrame) -> None:
    raises(UsageError, "'subtype'", "--id")(
        lambda: select_columns(genes, ["subtype"], ids=["subtype"])
    )


def test_target_listed_as_feature(genes: pd.DataFrame) -> None:
    raises(UsageError, "'subtype'", "--features")(
        lambda: select_columns(genes, ["subtype"], features=["subtype", "GENE001"])
    )


def test_no_features_left(genes: pd.DataFrame) -> None:
    raises(DataError, "No feature columns", "g.csv")(
        lambda: select_columns(
            genes, ["subtype"], ids=["sample_id"], drop=["GENE*", "batch"], source="g.csv"
        )
    )


def test_id_like_column_is_left_out_with_a_warning(
    genes: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        selection = select_columns(genes, ["subtype"], source="g.csv")
    assert "sample_id" not in selection.features
    assert "--id sample_id" in caplog.text and "g.csv" in caplog.text


@pytest.mark.parametrize(
    "name", ["id", "ID", "Sample", "SampleID", "MouseID", "patient", "barcode", "cell_line", "uid"]
)
def test_id_names(genes: pd.DataFrame, name: str, caplog: pytest.LogCaptureFixture) -> None:
    frame = genes.rename(columns={"sample_id": name})
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        selection = select_columns(frame, ["subtype"])
    assert name not in selection.features
    assert f"--id {name}" in caplog.text


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("dose", [float(i % 7) for i in range(30)]),  # integers, but neither unique nor an id
        ("patient", [f"P{i % 10}" for i in range(30)]),  # repeated: a grouping, not an id
        ("label", [f"L{i}" for i in range(30)]),  # unique but not named like an id
    ],
    ids=["numeric", "repeated", "not-id-name"],
)
def test_not_taken_for_an_id(genes: pd.DataFrame, name: str, values: list[object]) -> None:
    frame = genes.drop(columns="sample_id")
    frame[name] = pd.Series(values)
    assert name in select_columns(frame, ["subtype"]).features


def test_unique_text_column_without_id_name_warns(
    genes: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    frame = genes.drop(columns="sample_id").assign(label=[f"L{i}" for i in range(30)])
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        select_columns(frame, ["subtype"])
    assert "'label'" in caplog.text and "every row" in caplog.text


def test_given_id_or_explicit_feature_gives_no_warning(
    genes: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        select_columns(genes, ["subtype"], ids=["sample_id"])
        selection = select_columns(genes, ["subtype"], features=["sample_id", "GENE001"])
    assert caplog.text == ""
    assert selection.features == ["sample_id", "GENE001"]


def test_categorical_names_and_patterns(genes: pd.DataFrame) -> None:
    frame = genes.assign(grade=[1, 2, 3] * 10)
    selection = select_columns(frame, ["subtype"], ids=["sample_id"], categorical=["gra*"])
    assert selection.categorical == ["batch", "grade"]
    assert "grade" not in selection.numeric


def test_entirely_missing_features_are_dropped_in_one_warning(
    genes: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    frame = genes.assign(empty=np.float32("nan"), blank=np.float32("nan"))
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        selection = select_columns(frame, ["subtype"], ids=["sample_id"])
    assert "empty" not in selection.features and "blank" not in selection.features
    assert [r.getMessage() for r in caplog.records] == [
        "2 column(s) are entirely missing and are left out: 'empty', 'blank'."
    ]
    raises(DataError, "'empty', 'blank'", "--strict")(
        lambda: select_columns(frame, ["subtype"], ids=["sample_id"], strict=True)
    )


def test_numeric_column_with_junk_names_value_and_row(genes: pd.DataFrame) -> None:
    values = [str(v) for v in range(30)]
    values[16] = "abc"
    frame = genes.assign(dose=pd.Series(values, dtype="str"))
    raises(DataError, "'dose'", "'abc'", "data row 17", "--na-values", "--numeric dose")(
        lambda: select_columns(frame, ["subtype"], ids=["sample_id"], source="g.csv", strict=True)
    )
    # Without --strict the column is categorical.
    assert "dose" in select_columns(frame, ["subtype"], ids=["sample_id"]).categorical
    # Named categorical, the same column is accepted as text.
    selection = select_columns(frame, ["subtype"], ids=["sample_id"], categorical=["dose"])
    assert "dose" in selection.categorical


def test_junk_found_in_a_read_file(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 0.5}\n" if i != 17 else "17,n.d.\n" for i in range(1, 31))
    table = read_table(write(tmp_path / "j.csv", "y,x\n" + rows))
    raises(DataError, "'x'", "j.csv", "'n.d.'", "data row 17")(
        lambda: select_columns(table.frame, ["y"], source=table.source, strict=True)
    )


def test_mostly_text_column_is_categorical(genes: pd.DataFrame) -> None:
    frame = genes.assign(dose=["1", "2", "high"] * 10)
    selection = select_columns(frame, ["subtype"], ids=["sample_id"])
    assert "dose" in selection.categorical


def test_decimal_comma_column_suggests_decimal(genes: pd.DataFrame) -> None:
    frame = genes.assign(conc=[f"{i},5" for i in range(30)])
    raises(DataError, "'conc'", "--decimal ,", "data row 1")(
        lambda: select_columns(frame, ["subtype"], ids=["sample_id"])
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(np.inf, "infinite"), (-np.inf, "infinite"), (3e31, "3e+31"), (-1e35, "-1e+35")],
    ids=["inf", "-inf", "3e31", "-1e35"],
)
def test_inf_and_absurd_values(genes: pd.DataFrame, value: float, fragment: str) -> None:
    frame = genes.copy()
    frame["GENE005"] = frame["GENE005"].astype(np.float64)
    frame.loc[6, "GENE005"] = value
    raises(DataError, "'GENE005'", fragment, "data row 7", "g.csv")(
        lambda: select_columns(frame, ["subtype"], ids=["sample_id"], source="g.csv")
    )


def test_more_features_than_rows_warns(
    genes: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    small = genes.iloc[:9]
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        select_columns(small, ["subtype"], ids=["sample_id"], source="g.csv")
    assert "more features (13) than rows (9)" in caplog.text


# --------------------------------------------------------------------------------------------
# Targets and task
# --------------------------------------------------------------------------------------------


def _frame(**columns: Sequence[object]) -> pd.DataFrame:
    return pd.DataFrame(columns)


@pytest.mark.parametrize(
    ("values", "task", "labels"),
    [
        (["b", "a", "c"] * 20, "multiclass", ["a", "b", "c"]),
        (["yes", "no"] * 30, "binary", ["no", "yes"]),
        ([True, False] * 30, "binary", ["False", "True"]),
        ([0, 1] * 30, "binary", ["0", "1"]),
        ([-1.0, 1.0] * 30, "binary", ["-1", "1"]),
        ([0.1, 0.2] * 30, "binary", ["0.1", "0.2"]),
        ([0, 1, 2, 3] * 50, "multiclass", ["0", "1", "2", "3"]),
        ([1, 2, 10] * 25, "multiclass", ["1", "2", "10"]),  # numeric order, not string order
        ([0, 1, 2, 3] * 10, "regression", None),  # 4 values in 40 rows: not < 5% of rows
        (list(range(11)) * 100, "regression", None),  # more than 10 distinct integers
        ([0.5, 1.5, 2.5] * 40, "regression", None),  # not integer-valued
        (list(np.linspace(0, 1, 60)), "regression", None),
    ],
    ids=[
        "strings-3",
        "strings-2",
        "bool",
        "zero-one",
        "minus-one-one",
        "two-floats",
        "int-4-in-200",
        "int-numeric-order",
        "int-4-in-40",
        "int-11",
        "half-integers",
        "continuous",
    ],
)
def test_auto_task(values: list[object], task: str, labels: list[str] | None) -> None:
    info = detect_task(_frame(y=values), ["y"])
    assert (info.task, info.labels) == (task, labels)
    assert "'y'" in info.reason


def test_reason_sentence() -> None:
    info = detect_task(_frame(**{"class": ["a", "b", "c"] * 5}), ["class"])
    assert info.reason.startswith("target 'class' has 3 string values")


def test_float32_labels_keep_their_short_form() -> None:
    frame = _frame(y=[0.1, 0.7] * 10).astype(np.float32)
    info = detect_task(frame, ["y"])
    assert info.labels == ["0.1", "0.7"]
    assert as_label_strings(frame["y"]).tolist()[:2] == ["0.1", "0.7"]


def test_missing_values_are_ignored_by_detection() -> None:
    info = detect_task(_frame(y=["a", None, "b"] * 5), ["y"])
    assert info.labels == ["a", "b"]


def test_boolean_target_with_missing_values() -> None:
    info = detect_task(_frame(y=[True, None, False] * 5), ["y"])
    assert (info.task, info.labels) == ("binary", ["False", "True"])


def test_several_targets() -> None:
    frame = _frame(a=[0, 1] * 10, b=[1, 1, 0, 0] * 5, c=[0.5, 2.5] * 10, s=["x", "y"] * 10)
    multilabel = detect_task(frame, ["a", "b"])
    assert (multilabel.task, multilabel.labels) == ("multilabel", ["a", "b"])
    assert detect_task(frame, ["a", "c"]).task == "regression"
    raises(UsageError, "'a'", "'s'")(lambda: detect_task(frame, ["a", "s"]))


@pytest.mark.parametrize(
    ("values", "task", "kind", "fragments"),
    [
        (["a", "b"] * 5, "regression", UsageError, ["--task regression", "'y'", "string"]),
        (["a", "b", "c"] * 5, "binary", UsageError, ["--task binary", "3"]),
        ([0.5, 1.7, 2.2] * 5, "multiclass", UsageError, ["non-integer", "--task regression"]),
        ([0, 1] * 5, "multilabel", UsageError, ["several"]),
        ([7, 7, 7], "auto", DataError, ["single value '7'", "g.csv"]),
        (["x"] * 4, "multiclass", DataError, ["single value 'x'"]),
    ],
    ids=[
        "regression-on-strings",
        "binary-3",
        "multiclass-floats",
        "multilabel-1",
        "constant",
        "constant-string",
    ],
)
def test_explicit_task_is_checked(
    values: list[object], task: str, kind: type[MlpcliError], fragments: list[str]
) -> None:
    raises(kind, *fragments)(lambda: detect_task(_frame(y=values), ["y"], task, source="g.csv"))


@pytest.mark.parametrize(
    ("values", "task", "labels"),
    [
        (["a", "b"] * 5, "binary", ["a", "b"]),
        (["a", "b"] * 5, "multiclass", ["a", "b"]),
        ([0, 1, 2] * 5, "multiclass", ["0", "1", "2"]),
        ([0, 1, 2] * 5, "regression", None),
        (list(range(40)), "multiclass", [str(i) for i in range(40)]),
    ],
    ids=["binary", "multiclass-2", "multiclass-ints", "regression-ints", "multiclass-many"],
)
def test_explicit_task_accepted(values: list[object], task: str, labels: list[str] | None) -> None:
    info = detect_task(_frame(y=values), ["y"], task)
    assert (info.task, info.labels) == (task, labels)
    assert f"--task {task}" in info.reason


def test_explicit_multilabel_and_one_target_tasks_with_several_targets() -> None:
    frame = _frame(a=[0, 1] * 5, b=[1, 0] * 5, c=[2, 0] * 5)
    assert detect_task(frame, ["a", "b"], "multilabel").labels == ["a", "b"]
    raises(UsageError, "'c'")(lambda: detect_task(frame, ["a", "c"], "multilabel"))
    raises(UsageError, "--task binary", "one target")(
        lambda: detect_task(frame, ["a", "b"], "binary")
    )


def test_unknown_task_lists_choices() -> None:
    raises(UsageError, "'classify'", "binary, multiclass")(
        lambda: detect_task(_frame(y=[0, 1]), ["y"], "classify")
    )


def test_inf_target_is_reported() -> None:
    raises(DataError, "'y'", "data row 2")(lambda: detect_task(_frame(y=[0.5, np.inf, 2.0]), ["y"]))


def test_drop_missing_targets_renumbers() -> None:
    frame = _frame(y=["a", None, "b", np.nan], x=[1, 2, 3, 4])
    kept, n_dropped = drop_missing_targets(frame, ["y"])
    assert n_dropped == 2
    assert kept["x"].tolist() == [1, 3]
    assert kept.index.tolist() == [0, 1]
    same, none = drop_missing_targets(kept, ["y"])
    assert none == 0 and same is kept


def test_drop_missing_targets_with_several_targets() -> None:
    frame = _frame(a=[1, None, 0], b=[0, 1, None])
    kept, n_dropped = drop_missing_targets(frame, ["a", "b"])
    assert (len(kept), n_dropped) == (1, 2)


def test_target_empty_after_dropping() -> None:
    frame = _frame(y=[None, None], x=[1, 2])
    raises(DataError, "'y'", "g.csv", "no values")(
        lambda: drop_missing_targets(frame, ["y"], source="g.csv")
    )


# --------------------------------------------------------------------------------------------
# Real and bundled data
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not MICE.exists(), reason=f"shared mice data not found at {MICE}")
def test_mice_protein_expression() -> None:
    table = read_table(MICE, sep=";", decimal=",")
    frame = table.frame
    assert frame.shape == (1080, 82)
    proteins = [c for c in frame.columns if c.endswith("_N")]
    assert len(proteins) == 77
    assert all(frame[c].dtype == np.float32 for c in proteins)
    assert int(frame[proteins].isna().sum().sum()) == 1396  # as the data's README says
    assert table.sha256 == sha(MICE)
    info = detect_task(frame, ["class"])
    assert info.task == "multiclass"
    assert info.labels is not None and len(info.labels) == 8
    selection = select_columns(
        frame, ["class"], ids=["MouseID"], drop=["Genotype", "Treatment", "Behavior"]
    )
    assert selection.features == proteins
    assert selection.categorical == []


@pytest.mark.skipif(not MICE.exists(), reason=f"shared mice data not found at {MICE}")
def test_mice_without_options_says_which_separator() -> None:
    raises(DataError, "Data_Cortex_Nuclear.csv.gz", "--sep ';'")(lambda: read_table(MICE))


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location(
        "make_sample_data", REPO / "sample_data" / "make_sample_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("name", "maker"),
    [("expression.csv", "make_expression"), ("drug_response.csv", "make_drug_response")],
)
def test_sample_data_is_reproducible(tmp_path: Path, name: str, maker: str) -> None:
    module = _load_generator()
    fresh = tmp_path / name
    module.write(getattr(module, maker)(), fresh)  # type: ignore[attr-defined]
    assert fresh.read_bytes() == (REPO / "sample_data" / name).read_bytes()


def test_sample_expression(caplog: pytest.LogCaptureFixture) -> None:
    path = REPO / "sample_data" / "expression.csv"
    assert path.stat().st_size < 1_000_000
    table = read_table(path)
    assert table.frame.shape == (600, 63)
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        selection = select_columns(table.frame, ["subtype"], source=table.source)
    assert "--id sample_id" in caplog.text
    assert selection.categorical == ["batch"]
    assert len(selection.features) == 61
    missing = float(table.frame[selection.numeric].isna().to_numpy().mean())
    assert 0.01 < missing < 0.05
    info = detect_task(table.frame, ["subtype"])
    assert (info.task, info.labels) == ("multiclass", ["basal", "her2", "luminal"])


def test_sample_drug_response() -> None:
    table = read_table(REPO / "sample_data" / "drug_response.csv")
    frame, n_dropped = drop_missing_targets(table.frame, ["ic50"])
    assert (len(table.frame), n_dropped) == (500, 5)
    selection = select_columns(frame, ["ic50"], ids=["cell_line"])
    assert selection.categorical == ["tissue"]
    assert len(selection.features) == 29
    assert detect_task(frame, ["ic50"]).task == "regression"


def test_package_imports_pandas_lazily() -> None:
    modules = sorted(Path(data.__file__).parent.glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        source = module.read_text()
        assert "\nimport pandas" not in source and "\nfrom pandas" not in source, module.name


@pytest.mark.parametrize(
    ("name", "read", "written"),
    [
        ("t.csv", ",", ","),
        ("t.tsv.gz", "\t", "\t"),
        ("t.tab", "\t", "\t"),
        ("t.txt", None, "\t"),  # any delimiter when read (sniffed), tabs when written
        ("t.dat", None, None),
    ],
    ids=str,
)
def test_one_extension_map_for_readers_and_writers(
    name: str, read: str | None, written: str | None, tmp_path: Path
) -> None:
    """Reading, predict's and explain's writers and --group-features use one map (issue 13)."""
    from mlpcli.data.codecs import extension_separator
    from mlpcli.data.write import output_format
    from mlpcli.explain import check_outputs

    assert extension_separator(name) == read
    if written is None:
        with pytest.raises(UsageError, match="cannot tell the table format from the name"):
            output_format(name)
        with pytest.raises(UsageError, match="cannot tell the table format from the name"):
            check_outputs(str(tmp_path / name), None)
        return
    assert output_format(name)[0] == written
    check_outputs(str(tmp_path / name), None)
    # A comma-separated .txt is still read by sniffing.
    (tmp_path / "c.txt").write_text("a,b\n1,2\n")
    assert read_table(tmp_path / "c.txt").frame.columns.tolist() == ["a", "b"]
