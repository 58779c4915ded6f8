"""The table cache: a second read of the same file comes from the cache with the same frame and
messages; damaged or stale entries are rebuilt, never trusted; results do not depend on it."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpcli.cli import app
from mlpcli.data import blocks, cache, read, read_table

EXPRESSION = Path(__file__).resolve().parents[1] / "sample_data" / "expression.csv"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A cache of its own, on for the test, off again after it."""
    folder = tmp_path / "cache"
    before = cache.active_root()
    cache.use(folder)
    yield folder
    cache.use(before)


def settled(path: Path) -> Path:
    """Make a just-written file look older than the racy window, so its stat is recorded."""
    past = time.time() - 10
    os.utime(path, (past, past))
    return path


@pytest.fixture
def tricky(tmp_path: Path) -> Path:
    """IDs with leading zeros, quoted text with separators, missing cells, ints, booleans and
    R row names (an empty first header cell)."""
    path = tmp_path / "tricky.csv"
    path.write_text(
        ",id,x,n,flag,label\n"
        'r1,007,1.5,1,True,"a, b"\n'
        "r2,008,NA,2,False,c\n"
        "r3,,2.25,3,True,\n"
        'r4,010,-0.5,4,False,"say ""hi"""\n',
        encoding="utf-8",
    )
    return settled(path)


def parsed_never(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was parsed although its cache entry is valid")

    monkeypatch.setattr(read, "_parse_table", fail)


def test_second_read_comes_from_the_cache_with_the_same_frame_and_messages(
    root: Path, tricky: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="mlpcli"):
        first = read_table(tricky, text_columns=["id"])
    said = [r.getMessage() for r in caplog.records]
    caplog.clear()
    parsed_never(monkeypatch)
    with caplog.at_level(logging.INFO, logger="mlpcli"):
        second = read_table(tricky, text_columns=["id"])
    pd.testing.assert_frame_equal(second.frame, first.frame)
    assert second.frame["id"].tolist()[:2] == ["007", "008"]
    assert (second.sha256, second.sep, second.id_column) == (
        first.sha256,
        first.sep,
        first.id_column,
    )
    assert [r.getMessage() for r in caplog.records] == said
    assert any("row name" in message for message in said)


def test_other_options_or_other_bytes_are_other_entries(root: Path, tricky: Path) -> None:
    read_table(tricky, text_columns=["id"])
    as_numbers = read_table(tricky)  # no text_columns: id is numeric
    assert as_numbers.frame["id"].dtype == np.float32
    tricky.write_text(tricky.read_text().replace("1.5", "9.5"), encoding="utf-8")
    changed = read_table(settled(tricky), text_columns=["id"])
    assert changed.frame["x"].iloc[0] == 9.5
    assert len(list((root / cache.ENTRIES).iterdir())) == 3


def damage_truncate(folder: Path) -> None:
    data = (folder / cache.NUMERIC_FILE).read_bytes()
    (folder / cache.NUMERIC_FILE).write_bytes(data[:-4])


def damage_flip(folder: Path) -> None:
    data = bytearray((folder / cache.NUMERIC_FILE).read_bytes())
    data[5] ^= 0x10
    (folder / cache.NUMERIC_FILE).write_bytes(bytes(data))


def damage_codes(folder: Path) -> None:
    codes = folder / "codes-0.i32"
    data = bytearray(codes.read_bytes())
    data[0] ^= 0x01
    codes.write_bytes(bytes(data))


def damage_meta(folder: Path) -> None:
    (folder / cache.META_FILE).write_text("{not json", encoding="utf-8")


def damage_version(folder: Path) -> None:
    meta = json.loads((folder / cache.META_FILE).read_text())
    meta["format"] = cache.FORMAT_VERSION + 1
    (folder / cache.META_FILE).write_text(json.dumps(meta), encoding="utf-8")


def damage_missing(folder: Path) -> None:
    (folder / "levels-0.json").unlink()


@pytest.mark.parametrize(
    "damage",
    [damage_truncate, damage_flip, damage_codes, damage_meta, damage_version, damage_missing],
    ids=["truncated", "bit-flip", "codes", "bad-meta", "wrong-version", "missing-file"],
)
def test_a_damaged_entry_is_rebuilt_not_trusted(root: Path, tricky: Path, damage: object) -> None:
    first = read_table(tricky, text_columns=["id"])
    (folder,) = (root / cache.ENTRIES).iterdir()
    damage(folder)  # type: ignore[operator]
    again = read_table(tricky, text_columns=["id"])
    pd.testing.assert_frame_equal(again.frame, first.frame)
    rebuilt = cache.lookup(
        root, tricky, json.loads((folder / cache.META_FILE).read_text())["options"]
    )
    assert rebuilt is not None  # the rebuilt entry is valid again
    pd.testing.assert_frame_equal(rebuilt.frame(), first.frame)


@pytest.mark.parametrize("at", [0, 1, -1], ids=["first-range", "middle-range", "last-byte"])
def test_a_file_checked_in_ranges_on_threads_finds_a_flip_in_any_range(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    """The split check sums the same words as one pass: it accepts the intact entry and finds
    a flipped bit wherever it is (three ranges of a file whose size is not a multiple of 3)."""
    path = tmp_path / "wide.csv"
    frame = pd.DataFrame(np.arange(7 * 13, dtype=np.float32).reshape(13, 7) / 4)
    frame.to_csv(path, index=False)
    first = read_table(settled(path))
    monkeypatch.setattr(cache, "CHECK_SPLIT_FROM_BYTES", 0)
    monkeypatch.setattr(cache, "CHECK_PARTS", 3)
    parsed_never(monkeypatch)
    pd.testing.assert_frame_equal(read_table(path).frame, first.frame)  # intact: trusted
    monkeypatch.undo()
    monkeypatch.setattr(cache, "CHECK_SPLIT_FROM_BYTES", 0)
    monkeypatch.setattr(cache, "CHECK_PARTS", 3)
    (folder,) = (root / cache.ENTRIES).iterdir()
    data = bytearray((folder / cache.NUMERIC_FILE).read_bytes())
    data[{0: 2, 1: len(data) // 2, -1: len(data) - 1}[at]] ^= 0x04
    (folder / cache.NUMERIC_FILE).write_bytes(bytes(data))
    options = json.loads((folder / cache.META_FILE).read_text())["options"]
    assert cache.lookup_sha(root, first.sha256, options) is None  # damaged: removed
    pd.testing.assert_frame_equal(read_table(path).frame, first.frame)  # parsed again


def test_a_just_written_file_is_not_found_by_its_stat(root: Path, tmp_path: Path) -> None:
    path = tmp_path / "fresh.csv"
    path.write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
    table = read_table(path)
    assert cache.known_sha256(root, path) is None  # racy: it may change within the same tick
    assert cache.lookup_sha(root, table.sha256, _options()) is not None
    read_table(settled(path))
    assert cache.known_sha256(root, path) == table.sha256


def _options(**given: object) -> dict[str, object]:
    defaults: dict[str, object] = {
        "sep": None,
        "decimal": ".",
        "na_values": None,
        "transpose": False,
        "encoding": None,
        "text_columns": [],
        "thousands": None,
        "numeric": [],
        "sheet": None,
        "layer": None,
        "columns": None,
    }
    return {**defaults, **given}


def test_chunks_build_the_same_entry_as_the_whole_table(root: Path, tricky: Path) -> None:
    whole = read_table(tricky, text_columns=["id"])
    chunks = [whole.frame.iloc[:1], whole.frame.iloc[1:3], whole.frame.iloc[3:]]
    entry = cache.build_entry(chunks, root / "chunked", {"x": 1}, lambda: whole.sha256)
    assert entry is not None
    pd.testing.assert_frame_equal(entry.frame(), whole.frame)
    assert entry.numeric.dtype == np.float32 and entry.numeric.flags.c_contiguous
    assert entry.numeric_columns == ["x", "n", "flag"]  # float32 columns first
    assert entry.levels("label")[entry.codes("label")[0]] == "a, b"
    assert entry.codes("id")[2] == -1


def test_a_table_without_numeric_columns_streams_from_its_entry(root: Path, tmp_path: Path) -> None:
    # A features x samples sheet read untransposed is all text: its entry has a (rows, 0)
    # matrix, and streaming it (predict/evaluate) gives the parsed frame, not "ends early".
    path = tmp_path / "text.csv"
    path.write_text("gene,S1,S2\nx1,0.5,case\nx2,ctrl,-1.5\nstatus,case,ctrl\n", encoding="utf-8")
    whole = read_table(path)
    entry = cache.build_entry([whole.frame], root / "text", {"x": 1}, lambda: whole.sha256)
    assert entry is not None and entry.numeric.shape == (3, 0)
    streamed = pd.concat(list(cache.EntryChunks(entry, str(path), chunk_size=2)))
    pd.testing.assert_frame_equal(streamed, whole.frame)


def test_the_entry_writer_writes_back_and_drops_its_pages_as_it_goes(
    root: Path, tricky: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dirty pages count against a memory cgroup (v1 kills the process): every file of an
    entry is written back chunk by chunk, and the entry is the same."""
    from mlpcli import outputs

    dropped: list[int] = []
    monkeypatch.setattr(outputs, "WRITE_BACK_BYTES", 1)
    advise = os.posix_fadvise
    monkeypatch.setattr(
        os, "posix_fadvise", lambda fd, a, b, how: (dropped.append(how), advise(fd, a, b, how))
    )
    whole = read_table(tricky, text_columns=["id"])
    chunks = [whole.frame.iloc[:1], whole.frame.iloc[1:3], whole.frame.iloc[3:]]
    entry = cache.build_entry(chunks, root / "chunked", {"x": 1}, lambda: whole.sha256)
    assert entry is not None
    pd.testing.assert_frame_equal(entry.frame(), whole.frame)
    n_files = 1 + len([c for c in entry.columns if entry.kind(c) == "text"])
    assert dropped.count(os.POSIX_FADV_DONTNEED) >= len(chunks) * n_files


def test_a_column_the_cache_cannot_hold_is_not_cached(root: Path, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("a,b\n1,99999999999\n2,3\n", encoding="utf-8")
    table = read_table(settled(path))
    assert table.frame["b"].tolist() == [99999999999, 3]  # beyond float32: not cached
    assert not list((root / cache.ENTRIES).iterdir())


def test_concurrent_commits_of_one_entry_leave_one_valid_entry(root: Path, tricky: Path) -> None:
    frame = read_table(tricky, text_columns=["id"]).frame
    writers = [cache.EntryWriter(root / "race", {"x": 2}) for _ in range(4)]
    for writer in writers:
        writer.append(frame)
    entries: list[object] = []
    threads = [
        threading.Thread(target=lambda w=w: entries.append(w.commit("ab" * 32))) for w in writers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(entry is not None for entry in entries)
    assert len([p for p in (root / "race" / cache.ENTRIES).iterdir()]) == 1


def test_cache_default_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPCLI_CACHE_DIR", "/x/mine")
    assert cache.default_root() == Path("/x/mine")
    monkeypatch.delenv("MLPCLI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/xdg")
    assert cache.default_root() == Path("/x/xdg/mlpcli")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.default_root() == Path.home() / ".cache" / "mlpcli"


def _train(data: Path, out: Path, *flags: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("train", str(data), "--target", "subtype", "--id", "sample_id", "--hidden", "8"),
            *("--epochs", "3", "--seed", "5", "--out", str(out), "-q", *flags),
        ],
    )
    assert result.exit_code == 0, result.output


def _members(path: Path) -> dict[str, bytes]:
    """Every array of a model file, byte for byte (the metadata holds wall-clock timings)."""
    with zipfile.ZipFile(path) as archive:
        return {n: archive.read(n) for n in archive.namelist() if n != "__metadata__.npy"}


@pytest.mark.slow
def test_models_are_the_same_with_and_without_the_cache(tmp_path: Path) -> None:
    data = tmp_path / "expression.csv"
    data.write_bytes(EXPRESSION.read_bytes())
    settled(data)
    folder = tmp_path / "cache"
    _train(data, tmp_path / "a.npz", "--cache", str(folder))  # parses, stores
    _train(data, tmp_path / "b.npz", "--cache", str(folder))  # from the cache
    _train(data, tmp_path / "c.npz", "--no-cache")
    assert cache.known_sha256(folder, data) is not None
    a, b, c = (_members(tmp_path / f"{n}.npz") for n in "abc")
    assert a == b == c


def test_cache_and_no_cache_together_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("train", str(EXPRESSION), "--target", "subtype", "--out", str(tmp_path / "m.npz")),
            *("--cache", str(tmp_path), "--no-cache"),
        ],
    )
    assert result.exit_code == 2
    assert "--no-cache" in result.output


# --------------------------------------------------------------------------- reading in blocks
def _rows(n: int, start: int = 0) -> str:
    return "".join(
        f'S{i:03d},{i * 0.5:.2f},{i % 7},"x, ""{i}""\ny",c{i % 3}\n' for i in range(start, n)
    )


BLOCK_CASES = {
    "quotes-newlines": "id,x,n,t,label\n" + _rows(300),
    "missing": "id,x,n,t,label\n" + _rows(150) + 'S999,NA,,"",\n' + _rows(300, 150),
    "int-then-float": "id,x,n,t,label\n" + _rows(200) + "S998,1.0,2.5,q,c1\n",
    "text-in-a-late-block": "id,x,n,t,label\n" + _rows(200) + "S997,oops,1,q,c1\n",
    "decimal-comma": "id;x;n\n" + "".join(f"S{i};{i},{i % 10};{i}\n" for i in range(400)),
    "crlf": "id,x,n,t,label\r\n" + _rows(200).replace("\n", "\r\n"),
    "no-final-newline": "id,x,n,t,label\n" + _rows(200).rstrip("\n"),
}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block reader on, with blocks of a few records: the small tables below are parsed in
    many blocks."""
    monkeypatch.setattr(read, "READ_IN_BLOCKS", True)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 300)
    monkeypatch.setattr(blocks, "FIRST_BLOCK_BYTES", 200)


@pytest.mark.parametrize("case", sorted(BLOCK_CASES))
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_blocks_give_the_frame_of_one_pandas_call(
    case: str, suffix: str, tmp_path: Path, small_blocks: None
) -> None:
    import gzip

    text = BLOCK_CASES[case].encode("utf-8")
    path = tmp_path / f"t{suffix}"
    path.write_bytes(gzip.compress(text) if suffix.endswith(".gz") else text)
    decimal = "," if case == "decimal-comma" else "."
    sep = ";" if case == "decimal-comma" else None
    kwargs = {"text_columns": ["id"], "decimal": decimal, "sep": sep}
    blocks = read._parse_table(
        path, sep, decimal, None, False, None, text_columns=["id"], in_blocks=True
    )
    whole = read._parse_table(
        path, sep, decimal, None, False, None, text_columns=["id"], in_blocks=False
    )
    pd.testing.assert_frame_equal(blocks.frame, cache.canonical(whole.frame))
    assert blocks.sha256 == whole.sha256
    assert read_table(path, **kwargs).frame.equals(blocks.frame)  # type: ignore[arg-type]


def test_stdin_is_read_whole_with_the_same_frame(tmp_path: Path, small_blocks: None) -> None:
    import io

    text = BLOCK_CASES["quotes-newlines"].encode("utf-8")
    path = tmp_path / "t.csv"
    path.write_bytes(text)
    piped = read_table("-", stdin=io.BytesIO(text), text_columns=["id"])
    pd.testing.assert_frame_equal(piped.frame, read_table(path, text_columns=["id"]).frame)


def test_a_bad_line_in_a_late_block_keeps_its_file_line_number(
    tmp_path: Path, small_blocks: None
) -> None:
    from mlpcli.errors import DataError

    path = tmp_path / "bad.csv"
    path.write_text("a,b\n" + "1,2\n" * 200 + "1,2,3\n" + "1,2\n" * 20, encoding="utf-8")
    with pytest.raises(DataError, match="line 202 has 3 fields but earlier lines have 2"):
        read_table(path)


def test_files_from_blocks_from_bytes_are_read_in_blocks_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READ_IN_BLOCKS None: a large file is parsed in blocks (its peak memory), a smaller one in
    one pandas call (faster), with the same frame either way."""
    from mlpcli.data import arrow

    monkeypatch.setattr(arrow, "READ_CSV", False)  # pyarrow would take the large file
    path = tmp_path / "t.csv"
    path.write_text(BLOCK_CASES["int-then-float"], encoding="utf-8")
    used: list[bool] = []
    original = read.parse_blocks
    monkeypatch.setattr(read, "parse_blocks", lambda *a: used.append(True) or original(*a))
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 300)
    assert read.READ_IN_BLOCKS is None
    monkeypatch.setattr(read, "BLOCKS_FROM_BYTES", path.stat().st_size + 1)
    whole = read_table(path, text_columns=["id"]).frame
    assert used == []
    monkeypatch.setattr(read, "BLOCKS_FROM_BYTES", path.stat().st_size)
    pd.testing.assert_frame_equal(read_table(path, text_columns=["id"]).frame, whole)
    assert used == [True]


def test_text_levels_held_by_pyarrow_give_the_frames_and_levels_of_python_strings(
    root: Path, tricky: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # IDs with leading zeros and a missing one, text with quotes: pandas 3's str columns keep
    # their levels as one pyarrow array (memory), other dtypes as Python strings.
    whole = read_table(tricky, text_columns=["id"])
    pytest.importorskip("pyarrow")
    dtype = whole.frame["id"].dtype
    pyarrow_strings = isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"  # pandas 3
    found = []
    for arrow in (True, False):
        if not arrow:
            monkeypatch.setattr(cache, "_arrow_levels", lambda raw, dtype, name: None)
        entry = cache.build_entry([whole.frame], root / f"e{arrow}", {"x": 1}, lambda: whole.sha256)
        assert entry is not None
        assert bool(entry._arrow_levels) == (arrow and pyarrow_strings)
        streamed = pd.concat(list(cache.EntryChunks(entry, str(tricky), chunk_size=3)))
        pd.testing.assert_frame_equal(streamed, whole.frame)
        pd.testing.assert_frame_equal(entry.frame(), whole.frame)
        found.append([entry.levels(c) for c in ("id", "label")])
    assert found[0] == found[1]


#: Levels as `build_entry` writes them, and whether the bytes hold an escape (`json.loads` then).
LEVEL_LISTS: dict[str, tuple[list[Any], bool]] = {
    "empty": ([], False),
    "one": (["s1"], False),
    "ids": ([f"{i:07d}" for i in range(1000)], False),
    "empty-strings-and-spaces": (["", " ", "a b", "  "], False),
    "json-punctuation-inside": (["a,b", "[x]", "{y}", ", ", ":", "],["], False),
    "unicode-as-is": (["Ünï", "日本", "\u2028", "emoji \U0001f600"], False),
    "quote": (['say "hi"', "b"], True),
    "backslash": (["a\\b"], True),
    "control-characters": (["tab\there", "line\nbreak"], True),
}


@pytest.mark.parametrize("case", sorted(LEVEL_LISTS))
def test_levels_cut_from_the_json_bytes_equal_json_loads(case: str) -> None:
    pa = pytest.importorskip("pyarrow")
    levels, escaped = LEVEL_LISTS[case]
    raw = json.dumps(levels, ensure_ascii=False).encode("utf-8")
    fast = cache._json_strings(raw, pa)
    if escaped:
        assert fast is None
    else:
        assert fast is not None and fast.equals(pa.array(levels, pa.string()))
    assert cache._arrow_levels(raw, "str", "id").to_pylist() == levels  # either way


def test_random_levels_cut_from_the_json_bytes_equal_json_loads() -> None:
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(4)
    alphabet = [*'ab ,[]{}:"\\\t\n\u00e9\u65e5\U0001f600', "", "NA"]
    for _ in range(300):
        levels = ["".join(rng.choice(alphabet, rng.integers(0, 6))) for _ in range(rng.integers(6))]
        raw = json.dumps(levels, ensure_ascii=False).encode("utf-8")
        fast = cache._json_strings(raw, pa)
        assert fast is None or fast.to_pylist() == levels, levels
        assert (fast is None) == (b"\\" in raw)


@pytest.mark.parametrize(
    "text",
    [
        '["a" "b"]',
        '["a",,"b"]',
        '["a",,"b" "c"]',
        '["a"],["b"]',
        '{"a": "b"}',
        '["a", 1]',
        "[null]",
        '[["a"]]',
        '"a"',
    ],
)
def test_json_that_is_not_a_flat_list_of_strings_is_left_to_json_loads(text: str) -> None:
    pa = pytest.importorskip("pyarrow")
    assert cache._json_strings(text.encode(), pa) is None
