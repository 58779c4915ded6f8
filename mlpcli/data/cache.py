"""The table cache: a parsed, typed table kept as memory-mapped arrays, so the next command on
the same file (a pipeline's train, cv, tune, predict) skips parsing.

Where: `--cache DIR`, else `$MLPCLI_CACHE_DIR`, else `$XDG_CACHE_HOME/mlpcli`, else
`~/.cache/mlpcli`; `--no-cache` turns it off. The library reads no cache unless `use()` was
called (the CLI calls it for every command that reads tables).

Format (version `FORMAT_VERSION`), under the root:

    tables-v1/<key>/meta.json       what the entry holds (below); written last, so an entry
                                    without it is not one
    tables-v1/<key>/numeric.f32     float32 (n_rows, n_numeric), C order, the file's row order,
                                    NaN for missing; the float, integer and boolean columns
    tables-v1/<key>/codes-<i>.i32   int32 (n_rows,): text column i as codes, -1 for missing
    tables-v1/<key>/levels-<i>.json the text column's distinct values, in code order
    stat-v1/<digest>.json           path, size, inode, mtime and ctime of a file -> its sha256,
                                    so an unchanged file is found without hashing it again

`<key>` is the SHA-256 of the format version, the source file's SHA-256 (the bytes as stored,
compressed if so), the reading options (canonical JSON) and the mlpcli, NumPy and pandas
versions: a change to any of them reads the file again. `meta.json` holds the key's parts,
`n_rows`, per column its name, kind (`numeric` or `text`), pandas dtype and slot (column of
`numeric.f32`, or text index), per array file its size in bytes and a checksum (the wrapping
uint64 sum of its 4-byte words), the table's separator and ID column, and the log messages
reading printed (replayed on a hit, so a cached run says what a parsing run says).

An entry is checked before use (format version, key, every file present with its size and
checksum); a damaged one is removed and rebuilt, never trusted. Entries are written into a
temporary folder and renamed into place, so a reader never sees half an entry and two runs
building the same entry at once are safe (the first rename wins, the other is discarded).

Reading API (`Entry`): `.numeric` (read-only-to-disk memory map; writes stay private),
`.numeric_columns` (its column names, in slot order), `.columns` (file order), `.kind(name)`,
`.codes(name)` and `.levels(name)` for text columns, `.frame()` (the pandas frame `read_table`
gives), `.rows(start, stop, names)` (some rows and columns, read with plain reads, for
streaming: `EntryChunks`). Writing API: `EntryWriter(root, options)`, `.append(frame)` per
chunk (rows go straight to the files: a table larger than memory is converted with flat
memory), `.commit(sha256)`;
`build_entry` wraps both; `StoringChunks` stores the chunks a `TableChunks` reads as they
go by. Finding: `lookup(root, path, options)` (stat fast path),
`lookup_sha(root, sha256, options)`, `remember(root, path, sha256)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mlpcli import cachedir
from mlpcli.outputs import WriteBackFile

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mlpcli")

FORMAT_VERSION = 1
ENTRIES = f"tables-v{FORMAT_VERSION}"
STATS = f"stat-v{FORMAT_VERSION}"
ENV = cachedir.ENV
NUMERIC_FILE = "numeric.f32"
META_FILE = "meta.json"

#: A file changed less than this long ago may change again within the same timestamp tick, so
#: its stat record could not tell the two versions apart (git's "racy" files): not recorded.
RACY_SECONDS = 2.0

#: Stands for the file's name in cached log messages (the same bytes may have another name).
SOURCE = "\x00source\x00"

#: Integers up to this size are exact in float32 and go into the numeric matrix.
FLOAT32_EXACT = 2**24


class Unsupported(Exception):
    """A column the cache cannot hold exactly (a mixed-type column, huge integers, dates): the
    table is simply not cached."""


# --------------------------------------------------------------------------- where
_root: Path | None = None


def default_root() -> Path:
    """`$MLPCLI_CACHE_DIR`, else `$XDG_CACHE_HOME/mlpcli`, else `~/.cache/mlpcli`."""
    return Path(cachedir.default_folder())


def use(root: str | Path | None) -> None:
    """Turn the cache on at `root` (None: off) for the tables this process reads."""
    global _root
    _root = None if root is None else Path(root)


def active_root() -> Path | None:
    return _root


# --------------------------------------------------------------------------- keys
def entry_key(sha256: str, options: Mapping[str, Any]) -> str:
    """The folder name of the entry for these bytes read with these options."""
    import pandas as pd

    from mlpcli import __version__

    payload = {
        "format": FORMAT_VERSION,
        "sha256": sha256,
        "options": options,
        "versions": [__version__, np.__version__, pd.__version__],
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stat_token(path: str | Path) -> dict[str, Any]:
    st = os.stat(path)
    return {
        "path": os.path.realpath(path),
        "size": st.st_size,
        "ino": st.st_ino,
        "dev": st.st_dev,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def _stat_file(root: Path, path: str | Path) -> Path:
    name = hashlib.sha256(os.path.realpath(path).encode("utf-8", "surrogateescape")).hexdigest()
    return root / STATS / f"{name}.json"


def remember(root: Path, path: str | Path, sha256: str) -> None:
    """Record that the file at `path`, as it is now, has this sha256 (unless it just changed)."""
    try:
        token = _stat_token(path)
        if time.time_ns() - token["mtime_ns"] < RACY_SECONDS * 1e9:
            return
        _write_atomic(_stat_file(root, path), json.dumps({**token, "sha256": sha256}).encode())
    except OSError as error:  # a read-only or full cache folder never fails a command
        log.debug("table cache: cannot record %s: %s", path, error)


def known_sha256(root: Path, path: str | Path) -> str | None:
    """The sha256 recorded for `path` if the file is unchanged since (same stat), else None."""
    try:
        record = json.loads(_stat_file(root, path).read_bytes())
        token = _stat_token(path)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in token.items()):
        return None
    digest = record.get("sha256")
    return digest if isinstance(digest, str) and len(digest) == 64 else None


def lookup(root: Path, path: str | Path, options: Mapping[str, Any]) -> Entry | None:
    """The valid entry for the file at `path` read with `options`, found without hashing the
    file when it is unchanged since it was last read; else None."""
    digest = known_sha256(root, path)
    return None if digest is None else lookup_sha(root, digest, options)


def lookup_sha(root: Path, sha256: str, options: Mapping[str, Any]) -> Entry | None:
    """The valid entry for these bytes and options, or None (a damaged one is removed)."""
    folder = root / ENTRIES / entry_key(sha256, options)
    if not (folder / META_FILE).is_file():
        return None
    try:
        return Entry(folder, sha256, options)
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.info("table cache: entry %s is damaged (%s); reading the file again.", folder, error)
        _remove(folder)
        return None


# --------------------------------------------------------------------------- reading
def _checksum(data: NDArray[Any] | bytes) -> int:
    """The wrapping sum of the 4-byte words (zero-padded tail): a damaged word changes it, and
    the sum of a file written in chunks of whole 4-byte values is the sum of the chunks' sums."""
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data.reshape(-1)
    raw = raw.view(np.uint8)
    words, tail = divmod(raw.size, 4)
    total = int(np.add.reduce(raw[: words * 4].view(np.uint32), dtype=np.uint64)) if words else 0
    if tail:
        total += int.from_bytes(raw[words * 4 :].tobytes().ljust(4, b"\0"), "little")
    return total % 2**64


#: Threads that check a large array file, and the size from which it is split: 400 MB (the
#: 1,000,000 x 100 table) took 0.15-0.17 s on one thread and 0.08-0.10 s on two.
CHECK_PARTS = 2
CHECK_SPLIT_FROM_BYTES = 32 << 20


def _range_sum(path: Path, start: int, stop: int, piece: int = 8 << 20) -> int:
    """`_checksum` of bytes `start` to `stop` of the file (`start` on a 4-byte word)."""
    total = 0
    with open(path, "rb") as handle:
        handle.seek(start)
        while start < stop and (data := handle.read(min(piece, stop - start))):
            start += len(data)
            total += _checksum(data)
    return total % 2**64


class Entry:
    """A validated cache entry (see the module docstring for its files)."""

    def __init__(self, folder: Path, sha256: str, options: Mapping[str, Any]) -> None:
        self.folder = folder
        meta = json.loads((folder / META_FILE).read_bytes())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {meta.get('format')}, expected {FORMAT_VERSION}")
        if meta.get("sha256") != sha256 or meta.get("key") != folder.name:
            raise ValueError("the entry belongs to other bytes")
        self.meta: dict[str, Any] = meta
        self.sha256 = sha256
        self.n_rows: int = int(meta["n_rows"])
        self.columns: list[str] = [c["name"] for c in meta["columns"]]
        self._columns: dict[str, dict[str, Any]] = {c["name"]: c for c in meta["columns"]}
        numeric = sorted(
            (c for c in meta["columns"] if c["kind"] == "numeric"), key=lambda c: c["slot"]
        )
        self.numeric_columns: list[str] = [c["name"] for c in numeric]
        if [c["slot"] for c in numeric] != list(range(len(numeric))):
            raise ValueError("numeric slots are not 0..n-1")
        sizes = {NUMERIC_FILE: self.n_rows * len(numeric) * 4}
        for c in meta["columns"]:
            if c["kind"] == "text":
                sizes[f"codes-{c['slot']}.i32"] = self.n_rows * 4
                sizes.setdefault(f"levels-{c['slot']}.json", -1)
            elif c["kind"] != "numeric":
                raise ValueError(f"unknown column kind {c['kind']!r}")
        arrays: dict[str, dict[str, int]] = meta["arrays"]
        if set(arrays) != set(sizes):
            raise ValueError("the array files do not match the columns")
        for name, expected in sizes.items():
            size = (folder / name).stat().st_size
            if size != arrays[name]["bytes"] or (expected >= 0 and size != expected):
                raise ValueError(f"{name} has {size} bytes, expected {arrays[name]['bytes']}")
        self.numeric: NDArray[np.float32] = self._map(NUMERIC_FILE, np.float32, len(numeric))
        self._codes = {
            c["name"]: self._map(f"codes-{c['slot']}.i32", np.int32, None)
            for c in meta["columns"]
            if c["kind"] == "text"
        }
        self._levels: dict[str, list[str]] = {}
        self._level_arrays: dict[str, NDArray[np.object_]] = {}
        self._arrow_levels: dict[str, Any] = {}  # pyarrow strings in place of `_levels`
        for c in meta["columns"]:
            if c["kind"] == "text":
                raw = (folder / f"levels-{c['slot']}.json").read_bytes()
                self._check(f"levels-{c['slot']}.json", raw)
                levels = _arrow_levels(raw, c["dtype"], c["name"])
                if levels is None:
                    levels = self._levels[c["name"]] = _json_list(raw, c["name"])
                else:
                    self._arrow_levels[c["name"]] = levels
                codes = self._codes[c["name"]]
                if codes.size and (int(codes.max()) >= len(levels) or int(codes.min()) < -1):
                    raise ValueError(f"codes of '{c['name']}' out of range")
        self.sep: str = meta["table"]["sep"]
        self.id_column: str | None = meta["table"]["id_column"]
        self.messages: list[tuple[int, str]] = [(int(a), str(b)) for a, b in meta["log"]]

    def _map(self, name: str, dtype: type[np.generic], width: int | None) -> NDArray[Any]:
        """The array file `name` as (rows, width), or (rows,) for width None; a table with no
        numeric columns still has a (rows, 0) matrix, so its rows slice like any other's."""
        shape = (self.n_rows,) if width is None else (self.n_rows, width)
        if self.n_rows == 0 or width == 0:
            array: NDArray[Any] = np.zeros(shape, dtype)
        else:
            # Checked with plain reads, not through the map: mapped pages would all become
            # resident in this process (out-of-core training runs under a memory limit).
            self._check_file(name)
            # Copy-on-write: a caller that writes into the frame changes its own pages only.
            return np.memmap(self.folder / name, dtype=dtype, mode="c", shape=shape)
        self._check(name, array)
        return array

    def _check_file(self, name: str) -> None:
        """`_check` of a file read in pieces. The sums of whole 4-byte words add up, so a large
        file is summed in `CHECK_PARTS` byte ranges on as many threads (reads and NumPy's sums
        release the GIL): the check is the serial part of every cached run's start."""
        path = self.folder / name
        size = path.stat().st_size
        parts = CHECK_PARTS if size >= CHECK_SPLIT_FROM_BYTES else 1
        bounds = [size * i // parts // 4 * 4 for i in range(parts)] + [size]
        ranges = list(itertools.pairwise(bounds))
        if parts == 1:
            total = _range_sum(path, *ranges[0])
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(parts, thread_name_prefix="mlpcli-check") as pool:
                total = sum(pool.map(lambda r: _range_sum(path, *r), ranges))
        if total % 2**64 != self.meta["arrays"][name]["sum"]:
            raise ValueError(f"{name} fails its checksum")

    def _check(self, name: str, data: NDArray[Any] | bytes) -> None:
        if _checksum(data) != self.meta["arrays"][name]["sum"]:
            raise ValueError(f"{name} fails its checksum")

    def kind(self, name: str) -> str:
        return str(self._columns[name]["kind"])

    def codes(self, name: str) -> NDArray[np.int32]:
        return self._codes[name]

    def levels(self, name: str) -> list[str]:
        found = self._levels.get(name)
        return self._arrow_levels[name].to_pylist() if found is None else found

    def frame(self) -> pd.DataFrame:
        """The table as `read_table` gave it: file column order, the same dtypes; the float32
        columns are the memory map itself when they are all of its columns."""
        return self._frame(0, self.n_rows, None, self.numeric, self._codes)

    def rows(self, start: int, stop: int, names: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows [start, stop) of the columns `names` (default all), in file order, as
        `TableChunks` reads them: the same dtypes, the index continuing from `start`. Read
        with plain reads, not through the memory maps, whose pages would stay resident in
        this process: streaming a long table keeps memory flat."""
        stop = max(start, min(stop, self.n_rows))
        numeric = self._read_rows(NUMERIC_FILE, start, stop, self.numeric)
        codes = {
            c["name"]: self._read_rows(
                f"codes-{c['slot']}.i32", start, stop, self._codes[c["name"]]
            )
            for c in self.meta["columns"]
            if c["kind"] == "text" and (names is None or c["name"] in names)
        }
        return self._frame(start, stop, names, numeric, codes, offset=start)

    def _read_rows(self, name: str, start: int, stop: int, like: NDArray[Any]) -> NDArray[Any]:
        """Rows [start, stop) of the array file `name`, shaped like its memory map `like`."""
        out = np.empty((stop - start, *like.shape[1:]), dtype=like.dtype)
        if out.size:
            row_bytes = out.nbytes // len(out)
            with open(self.folder / name, "rb", buffering=0) as handle:
                handle.seek(start * row_bytes)
                view = out.data.cast("B")
                done = 0
                while done < out.nbytes:
                    got = handle.readinto(view[done:])
                    if not got:
                        raise ValueError(f"{name} ends early")  # checked at opening, so changed
                    done += got
        return out

    def _frame(
        self,
        start: int,
        stop: int,
        names: Sequence[str] | None,
        numeric: NDArray[Any],
        codes: Mapping[str, NDArray[Any]],
        offset: int = 0,
    ) -> pd.DataFrame:
        """Rows [start, stop) as a frame, from `numeric` and `codes` holding the entry's rows
        from `offset` on."""
        import pandas as pd

        wanted = None if names is None else set(names)
        columns = [c for c in self.meta["columns"] if wanted is None or c["name"] in wanted]
        index = pd.RangeIndex(start, stop)
        numeric = numeric[start - offset : stop - offset]
        blocks: list[tuple[Any, NDArray[np.intp]]] = []
        by_dtype: dict[str, list[int]] = {}
        for position, c in enumerate(columns):
            if c["kind"] == "numeric":
                by_dtype.setdefault(c["dtype"], []).append(position)
        for dtype, positions in by_dtype.items():
            slots = [columns[p]["slot"] for p in positions]
            if dtype != "float32":
                values = numeric.T[slots].astype(dtype)
            elif slots == list(range(numeric.shape[1])):
                values = numeric.T  # the memory map itself, no copy
            else:  # the layout `canonical` gives: float32 columns row-major, C order
                values = np.ascontiguousarray(numeric[:, slots]).T
            blocks.append((values, np.asarray(positions, dtype=np.intp)))
        for position, c in enumerate(columns):
            if c["kind"] == "text":
                text = self._text(c, codes[c["name"]][start - offset : stop - offset])
                blocks.append((text, np.asarray([position], dtype=np.intp)))
        labels = pd.Index([c["name"] for c in columns], dtype=self.meta["table"]["columns_dtype"])
        return frame_from_blocks(blocks, index, labels)

    def replay(self, name: str) -> None:
        """Log again what reading the file logged when the entry was made, naming it `name`."""
        for level, message in self.messages:
            log.log(level, message.replace(SOURCE, name))

    def _text(self, column: Mapping[str, Any], codes: NDArray[np.int32]) -> Any:
        import pandas as pd

        arrow = self._arrow_levels.get(column["name"])
        if arrow is not None:  # code -1 (missing) taken as null: the dtype's missing value
            import pyarrow as pa

            return pd.array(arrow.take(pa.array(codes, mask=codes < 0)), dtype=column["dtype"])
        levels = self._level_arrays.get(column["name"])
        if levels is None:  # once per entry: a column of IDs has a level per row
            levels = np.empty(len(self._levels[column["name"]]) + 1, dtype=object)
            levels[:-1] = self._levels[column["name"]]
            levels[-1] = np.nan  # code -1 takes the last element: missing
            self._level_arrays[column["name"]] = levels
        values = levels.take(codes)
        return pd.array(values, dtype=column["dtype"])


def _json_list(raw: bytes, name: str) -> list[Any]:
    levels = json.loads(raw)
    if not isinstance(levels, list):  # written by us, its checksum verified
        raise ValueError(f"levels of '{name}' are not a list")
    return levels


def _arrow_levels(raw: bytes, dtype: str, name: str) -> Any:
    """A text column's levels as one pyarrow string array, when its pandas dtype is
    pyarrow's strings (pandas 3's `str`), else None. A column of 1,000,000 IDs then holds 13 MB
    instead of 70 MB of Python strings: `predict` on 1M cached rows peaked 0.06 GB lower."""
    import pandas as pd

    try:
        found = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return None
    if not (isinstance(found, pd.StringDtype) and found.storage == "pyarrow"):
        return None
    import pyarrow as pa

    fast = _json_strings(raw, pa)
    return fast if fast is not None else pa.array(_json_list(raw, name), pa.string())


def _json_strings(raw: bytes, pa: Any) -> Any:
    """The pyarrow strings of a JSON list of strings as `json.dumps` writes it (`["a", "b"]`)
    with no escape in it, cut from its bytes without making a Python string each (1,000,000
    IDs: 0.10 s for `json.loads` and 0.05 s more for `pa.array`); None for any other text,
    which `json.loads` reads. Without a backslash, every double quote opens or closes a
    string, and the bytes between the strings must be exactly `[`, `, ` and `]`."""
    if raw == b"[]":
        return pa.array([], pa.string())
    if b"\\" in raw or raw[:2] != b'["' or raw[-2:] != b'"]' or len(raw) >= 2**31:
        return None
    data = np.frombuffer(raw, np.uint8)
    quotes = np.flatnonzero(data == ord('"'))
    if len(quotes) % 2:
        return None
    opens, closes = quotes[0::2], quotes[1::2]
    gaps = closes[:-1]
    if not (
        (opens[1:] - gaps == 3).all()
        and (data[gaps + 1] == ord(",")).all()
        and (data[gaps + 2] == ord(" ")).all()
    ):
        return None
    keep = np.ones(len(data), bool)
    keep[[0, -1]] = False
    keep[quotes] = False
    keep[gaps + 1] = False
    keep[gaps + 2] = False
    offsets = np.zeros(len(opens) + 1, np.int32)
    np.cumsum(closes - opens - 1, out=offsets[1:])
    strings = pa.StringArray.from_buffers(
        len(opens), pa.py_buffer(offsets), pa.py_buffer(data[keep])
    )
    strings.validate(full=True)  # UTF-8, as `json.loads` would insist
    return strings


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """The same frame with its float32 columns in one row-major (n_rows, k) block, the layout
    of a cached table: a command gives the same results whether its table came from the file
    or from the cache (reductions over rows are summed in the same order)."""
    import pandas as pd

    floats = [i for i, dtype in enumerate(frame.dtypes) if dtype == np.float32]
    if not floats or not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0:
        return frame
    n_rows = len(frame)
    values = frame.iloc[:, floats].to_numpy()  # a view when the floats are one block
    if values.flags.c_contiguous and np.shares_memory(values, frame.iloc[:, floats[0]].array):
        return frame  # already one row-major block
    columns_t = values.T
    matrix = np.empty((n_rows, len(floats)), dtype=np.float32)
    for start in range(0, n_rows, TRANSPOSE_ROWS):  # in cache-sized pieces: 2x a plain copy
        matrix[start : start + TRANSPOSE_ROWS] = columns_t[:, start : start + TRANSPOSE_ROWS].T
    blocks: list[tuple[Any, NDArray[np.intp]]] = [(matrix.T, np.asarray(floats, np.intp))]
    for position in sorted(set(range(frame.shape[1])) - set(floats)):
        column = frame.iloc[:, position]
        values = column.to_numpy()[None, :] if isinstance(column.dtype, np.dtype) else column.array
        blocks.append((values, np.asarray([position], np.intp)))
    return frame_from_blocks(blocks, frame.index, frame.columns)


#: Rows per piece of the blocked transpose (100 float32 columns: 400 KB, in L2).
TRANSPOSE_ROWS = 1024


def frame_from_blocks(
    blocks: list[tuple[Any, NDArray[np.intp]]], index: pd.Index, columns: pd.Index
) -> pd.DataFrame:
    """A frame whose float block is the memory map itself (pandas >= 3), else built by columns."""
    import pandas as pd

    try:
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:
        parts: dict[int, Any] = {}
        for values, positions in blocks:
            for i, p in enumerate(positions):
                parts[int(p)] = values[i] if getattr(values, "ndim", 1) == 2 else values
        return pd.DataFrame({columns[p]: parts[p] for p in range(len(columns))}, index=index)
    return create_dataframe_from_blocks(blocks, index=index, columns=columns)


# --------------------------------------------------------------------------- writing
def _dtype_kind(series: pd.Series) -> tuple[str, str]:
    """(kind, dtype name) of a column as the cache holds it; raises Unsupported otherwise."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        if dtype.kind == "f" and dtype != np.float32:
            raise Unsupported(f"column '{series.name}' is {dtype}")
        return "numeric", dtype.name
    if (isinstance(dtype, np.dtype) and dtype.kind == "O") or isinstance(dtype, pd.StringDtype):
        return "text", str(dtype)
    raise Unsupported(f"column '{series.name}' has dtype {dtype}")


class EntryWriter:
    """Build one entry from row chunks (all with the same columns), then commit it."""

    def __init__(self, root: Path, options: Mapping[str, Any]) -> None:
        self.root = root
        self.options = dict(options)
        (root / ENTRIES).mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=".building-", dir=root / ENTRIES))
        self.n_rows = 0
        self._columns: list[dict[str, Any]] | None = None
        self._columns_dtype = "object"
        self._numeric: list[str] = []
        self._text: list[str] = []
        self._files: dict[str, WriteBackFile] = {}
        self._sums: dict[str, int] = {}
        self._levels: list[dict[str, int]] = []

    def _plan(self, frame: pd.DataFrame) -> None:
        if not all(isinstance(name, str) for name in frame.columns):
            raise Unsupported("a column name is not text")
        columns = []
        for name in frame.columns:
            kind, dtype = _dtype_kind(frame[name])
            columns.append({"name": name, "kind": kind, "dtype": dtype})
        # Float columns first: the frame's float block is then the memory map itself.
        order = sorted(range(len(columns)), key=lambda i: columns[i]["dtype"] != "float32")
        for i in order:
            names = self._numeric if columns[i]["kind"] == "numeric" else self._text
            columns[i]["slot"] = len(names)
            names.append(columns[i]["name"])
        self._columns = columns
        self._columns_dtype = str(frame.columns.dtype)
        self._levels = [{} for _ in self._text]
        for name in [NUMERIC_FILE, *(f"codes-{i}.i32" for i in range(len(self._text)))]:
            self._files[name] = WriteBackFile(self.folder / name)  # commit/abort close it
            self._sums[name] = 0

    def append(self, frame: pd.DataFrame) -> None:
        """Add the next rows (a frame as `read_table` or `TableChunks` gives it)."""
        import pandas as pd

        if self._columns is None:
            self._plan(frame)
        assert self._columns is not None
        if list(frame.columns) != [c["name"] for c in self._columns]:
            raise Unsupported("the chunks have different columns")
        for c in self._columns:
            kind, dtype = _dtype_kind(frame[c["name"]])
            if kind == "numeric" and c["kind"] == "numeric":
                if dtype == "float32" or c["dtype"] == "float32":
                    c["dtype"] = "float32"  # as a whole-file read promotes int to float
                elif dtype != c["dtype"]:
                    raise Unsupported(f"column '{c['name']}' changes type between chunks")
            elif kind == "text" and c["kind"] == "text":
                if dtype != c["dtype"]:
                    raise Unsupported(f"column '{c['name']}' changes type between chunks")
            elif not (c["kind"] == "text" and frame[c["name"]].isna().all()):
                raise Unsupported(f"column '{c['name']}' mixes numbers and text")
        if self._numeric:
            block = frame[self._numeric]
            for name in block.columns[[d.kind in "iub" for d in block.dtypes]]:
                values = block[name].to_numpy()
                if values.size and np.abs(values.astype(np.int64)).max() > FLOAT32_EXACT:
                    raise Unsupported(f"column '{name}' has integers beyond float32's range")
            matrix = np.ascontiguousarray(block.to_numpy(dtype=np.float32, na_value=np.nan))
            self._write(NUMERIC_FILE, matrix)
        for i, name in enumerate(self._text):
            column = frame[name]
            if column.notna().any() and pd.api.types.infer_dtype(column, skipna=True) != "string":
                raise Unsupported(f"column '{name}' mixes numbers and text")
            local, uniques = pd.factorize(column, use_na_sentinel=True)
            known = self._levels[i]
            values = np.asarray(uniques, dtype=object).tolist()
            mapping = np.array([known.setdefault(u, len(known)) for u in values], np.int32)
            codes = np.where(local < 0, -1, mapping[np.maximum(local, 0)] if len(mapping) else -1)
            self._write(f"codes-{i}.i32", codes.astype(np.int32))
        self.n_rows += len(frame)

    @property
    def n_levels(self) -> int:
        """Distinct text values held so far, over every text column."""
        return sum(map(len, self._levels))

    def _write(self, name: str, array: NDArray[Any]) -> None:
        array = np.ascontiguousarray(array)
        self._files[name].write(array.data)
        self._sums[name] = (self._sums[name] + _checksum(array)) % 2**64

    def commit(
        self,
        sha256: str,
        sep: str = ",",
        id_column: str | None = None,
        messages: Sequence[tuple[int, str]] = (),
    ) -> Entry | None:
        """Put the entry in place (or find the one a concurrent run put there first)."""
        if self._columns is None:
            self.abort()
            return None
        for handle in self._files.values():
            handle.close()
        arrays = {}
        for name in self._files:
            arrays[name] = {"bytes": (self.folder / name).stat().st_size, "sum": self._sums[name]}
        for i, levels in enumerate(self._levels):
            raw = json.dumps(list(levels), ensure_ascii=False).encode("utf-8")
            (self.folder / f"levels-{i}.json").write_bytes(raw)
            arrays[f"levels-{i}.json"] = {"bytes": len(raw), "sum": _checksum(raw)}
            self._levels[i] = {}  # a column of IDs holds a level per row: gone before the check
            del raw
        key = entry_key(sha256, self.options)
        meta = {
            "format": FORMAT_VERSION,
            "key": key,
            "sha256": sha256,
            "options": self.options,
            "n_rows": self.n_rows,
            "columns": self._columns,
            "arrays": arrays,
            "table": {"sep": sep, "id_column": id_column, "columns_dtype": self._columns_dtype},
            "log": [list(m) for m in messages],
        }
        (self.folder / META_FILE).write_text(json.dumps(meta, default=str), encoding="utf-8")
        final = self.root / ENTRIES / key
        try:
            os.rename(self.folder, final)
        except OSError:  # a concurrent run committed the same entry first: keep theirs
            self.abort()
        return lookup_sha(self.root, sha256, self.options)

    def abort(self) -> None:
        for handle in self._files.values():
            handle.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def build_entry(
    chunks: Iterable[pd.DataFrame],
    root: Path,
    options: Mapping[str, Any],
    sha256: Callable[[], str],
    sep: str = ",",
    id_column: str | None = None,
) -> Entry | None:
    """One pass over `chunks` into a committed entry; None if a column cannot be cached.
    `sha256` is called after the last chunk (the digest of a stream is known only then)."""
    writer = EntryWriter(root, options)
    try:
        for chunk in chunks:
            writer.append(chunk)
        return writer.commit(sha256(), sep, id_column)
    except Unsupported as why:
        log.debug("table cache: not cached: %s", why)
        writer.abort()
        return None
    except BaseException:
        writer.abort()
        raise


def store(
    root: Path,
    frame: pd.DataFrame,
    options: Mapping[str, Any],
    sha256: str,
    sep: str,
    id_column: str | None,
    messages: Sequence[tuple[int, str]] = (),
) -> Entry | None:
    """Cache a whole table as read; None (and nothing written) when it cannot be cached or the
    folder cannot be written (a cache never fails a command)."""
    try:
        writer = EntryWriter(root, options)
    except OSError as error:
        log.debug("table cache: cannot write under %s: %s", root, error)
        return None
    try:
        writer.append(frame)
        return writer.commit(sha256, sep, id_column, messages)
    except (Unsupported, OSError) as why:
        log.debug("table cache: not cached: %s", why)
        writer.abort()
        return None
    except BaseException:
        writer.abort()
        raise


# --------------------------------------------------------------------------- helpers
def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove(folder: Path) -> None:
    """Move a damaged entry aside (atomically), then delete it."""
    trash = folder.with_name(f".removing-{folder.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(folder, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


class EntryChunks:
    """A cached table read `chunk_size` rows at a time, as `TableChunks` reads the file it was
    made from (the same frames: columns `names` in file order, index continuing across
    chunks), for `predict` and `evaluate`: slices of the memory map instead of parsing."""

    def __init__(
        self, entry: Entry, source: str, chunk_size: int, names: Sequence[str] | None = None
    ) -> None:
        self.entry, self.source, self.chunk_size = entry, source, chunk_size
        self.names = None if names is None else list(names)
        self.sep, self.id_column = entry.sep, entry.id_column

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for start in range(0, self.entry.n_rows, self.chunk_size):
            yield self.entry.rows(start, start + self.chunk_size, self.names)

    def sha256(self) -> str:
        return self.entry.sha256

    def close(self) -> None:
        """Nothing to close: the memory maps go with the entry."""

    def __enter__(self) -> EntryChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Distinct text values (IDs, levels) a streaming read keeps for its entry at most: each costs
#: about 200 bytes until the entry is committed, so beyond this (0.2 GB) the table is not
#: stored and the read stays flat in memory however long the file.
MAX_STREAMED_LEVELS = 1 << 20


class StoringChunks:
    """`TableChunks` (opened with its checksum) whose chunks also go into a new entry for the
    file, committed once the last chunk is read: the next `predict` or `evaluate` of the file
    reads the entry (`EntryChunks`) instead of parsing. A table the cache cannot hold, with
    more than `MAX_STREAMED_LEVELS` distinct text values, or a folder it cannot write, is
    simply not stored; an interrupted read stores nothing."""

    def __init__(
        self,
        chunks: Any,
        root: Path,
        options: Mapping[str, Any],
        path: str,
        messages: Sequence[tuple[int, str]] = (),
    ) -> None:
        self.chunks, self.root, self.options, self.path = chunks, root, options, path
        self.messages = list(messages)
        self.source = chunks.source

    @property
    def sep(self) -> str:
        return str(self.chunks.sep)

    @property
    def id_column(self) -> str | None:
        return self.chunks.id_column  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[pd.DataFrame]:
        try:
            writer: EntryWriter | None = EntryWriter(self.root, self.options)
        except OSError as error:
            log.debug("table cache: cannot write under %s: %s", self.root, error)
            writer = None
        complete = False
        try:
            for frame in self.chunks:
                if writer is not None:
                    try:
                        writer.append(frame)
                        if writer.n_levels > MAX_STREAMED_LEVELS:
                            raise Unsupported(f"more than {MAX_STREAMED_LEVELS:,} text values")
                    except (Unsupported, OSError) as why:
                        log.debug("table cache: not cached: %s", why)
                        writer.abort()
                        writer = None
                yield frame
            complete = True
        finally:
            if writer is not None and complete:
                self._commit(writer)
            elif writer is not None:
                writer.abort()

    def _commit(self, writer: EntryWriter) -> None:
        try:
            sha256 = self.chunks.sha256()
            stored = writer.commit(sha256, self.sep, self.id_column, self.messages)
        except OSError as error:
            log.debug("table cache: not cached: %s", error)
            writer.abort()
            return
        if stored is not None:
            remember(self.root, self.path, sha256)

    def sha256(self) -> str:
        return str(self.chunks.sha256())

    def close(self) -> None:
        self.chunks.close()

    def __enter__(self) -> StoringChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
