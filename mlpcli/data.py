"""Reading tables, choosing target/feature/id columns, and detecting the learning task.

Input is what bioinformatics pipelines produce: CSV/TSV (or `;` with decimal commas from a
European Excel), possibly compressed, possibly on stdin, possibly a features x samples matrix.
Every problem a user can cause becomes a one-line `DataError`/`UsageError` naming the file,
column or option and what to do; no pandas traceback escapes.

pandas is imported inside the functions: `mlpcli --help` must not pay its 0.4 s import.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import difflib
import fnmatch
import gzip
import hashlib
import io
import logging
import lzma
import os
import queue
import re
import shlex
import stat
import sys
import threading
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from mlpcli import formats
from mlpcli.errors import (
    DataError,
    MlpcliError,
    UsageError,
    choose,
    install_hint,
    warn_or_fail,
)
from mlpcli.limits import MAX_HEADER_BYTES, SHOWN_CHARS, format_bytes, shorten

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mlpcli")

#: Cells read as missing unless `na_values` replaces the list (pandas' longer default list
#: would turn a gene called "NA" or a genotype "null" into NaN behind the user's back).
DEFAULT_NA_VALUES: tuple[str, ...] = ("", "NA", "N/A", "NaN", "nan", "null", "?", ".")

#: `--sep` spellings; any other single character is taken literally.
SEPARATORS: dict[str, str] = {
    ",": ",",
    "comma": ",",
    "\t": "\t",
    "\\t": "\t",
    "tab": "\t",
    ";": ";",
    "semicolon": ";",
    "|": "|",
    "pipe": "|",
    # Space-separated tables are usually aligned with runs of spaces (no empty fields).
    " ": r"\s+",
    "space": r"\s+",
    "whitespace": r"\s+",
}

#: Separator implied by the (inner) file extension; anything else is sniffed.
EXTENSION_SEPARATORS: dict[str, str] = {".csv": ",", ".tsv": "\t", ".tab": "\t"}

#: Candidates for sniffing, in csv.Sniffer's order of preference.
SNIFF_DELIMITERS = ",\t;| "

#: Bytes of (decompressed) text looked at to sniff the separator and read the header.
SNIFF_BYTES = 64 * 1024

#: A text column is "numeric-looking" when at least this share of its values parse as numbers;
#: the rest are then junk to report rather than categories to one-hot encode.
NUMERIC_SHARE = 0.9

#: A text column whose cells are at least this share numbers is "mostly numeric": it is still
#: categorical, but the warning names the other tokens (missing-value markers, typos).
MOSTLY_NUMERIC = 0.5

#: A numeric column named like an ID is one when at least this share of its values differ.
ID_DISTINCT_SHARE = 0.9

#: Feature magnitudes above this are reported: they overflow float32 arithmetic in training.
MAX_ABS_VALUE = 1e30

#: Auto-detection calls an integer target multiclass when it has at most this many distinct
#: values, and fewer than CLASS_SHARE x n_rows of them (at least 20 rows per class on average);
#: otherwise counts, ages and scores with many levels stay regression.
MAX_AUTO_CLASSES = 10
CLASS_SHARE = 0.05

#: Column names (lower-cased, punctuation removed) that mark a sample identifier.
ID_NAMES = frozenset(
    {
        "id",
        "sample",
        "sampleid",
        "samplename",
        "mouseid",
        "patient",
        "patientid",
        "subject",
        "subjectid",
        "barcode",
        "cellline",
        "cellid",
        "specimen",
        "accession",
        "uuid",
        "name",
    }
)

#: Name given to a first column without a header: R's `write.csv` row names.
ROW_NAMES = "row_name"


class _Reader(Protocol):
    """Anything with a binary `read`: files, stdin, decompressors, our wrappers."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class Table:
    """A table as read: the frame, a display name, and the sha256 of the bytes on disk."""

    frame: pd.DataFrame
    source: str
    sha256: str
    sep: str = ","
    #: A column the layout marks as the row ID (R row names, the --transpose corner cell).
    id_column: str | None = None


@dataclass
class ColumnSelection:
    """Which columns are targets, ids and features; `categorical` is a subset of `features`."""

    targets: list[str]
    ids: list[str]
    features: list[str]
    categorical: list[str]

    @property
    def numeric(self) -> list[str]:
        """Features that are not categorical, in table order."""
        categorical = set(self.categorical)
        return [name for name in self.features if name not in categorical]


@dataclass
class TaskInfo:
    """The learning task, why it was chosen, and the class labels (None for regression).

    For `multilabel`, `labels` holds the target names in the given order: one 0/1 output each.
    """

    task: str
    reason: str
    labels: list[str] | None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class _HashingReader(io.RawIOBase):
    """Pass reads through while a background thread hashes the same bytes.

    The file is read once; hashlib releases the GIL, so hashing overlaps the parsing.
    """

    def __init__(self, raw: _Reader, enabled: bool = True) -> None:
        super().__init__()
        self._raw = raw
        self._sha = hashlib.sha256() if enabled else None
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="mlpcli-sha256", daemon=True)
        if enabled:
            self._thread.start()

    def _work(self) -> None:
        assert self._sha is not None
        while (chunk := self._queue.get()) is not None:
            self._sha.update(chunk)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(-1 if size is None else size)
        if data and self._sha is not None:
            self._queue.put(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        """Hash whatever the parser left unread, then wait for the thread."""
        if self._sha is None:
            return ""
        while self.read(1 << 20):
            pass
        self._queue.put(None)
        self._thread.join()
        return self._sha.hexdigest()

    def close(self) -> None:
        if self._sha is not None and self._thread.is_alive():
            self._queue.put(None)
        super().close()


class _FileHasher:
    """sha256 of a file on disk, computed on a background thread while pandas parses it."""

    def __init__(self, path: str | Path) -> None:
        self._digest = ""
        self._error: OSError | None = None
        self._thread = threading.Thread(
            target=self._work, args=(path,), name="mlpcli-sha256", daemon=True
        )
        self._thread.start()

    def _work(self, path: str | Path) -> None:
        try:
            with open(path, "rb") as handle:
                self._digest = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as error:  # re-raised in the caller's thread, never a thread traceback
            self._error = error

    def hexdigest(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to sniff them), served again first."""

    def __init__(self, prefix: bytes, stream: _Reader) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._stream = stream
        self.mode = "rb"  # pandas looks for it to decide binary vs text

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            rest, self._prefix = bytes(self._prefix), memoryview(b"")
            return rest + self._stream.read(-1)
        if self._prefix:
            head, self._prefix = self._prefix[:size], self._prefix[size:]
            return bytes(head)
        return self._stream.read(size)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _FieldCheck(io.RawIOBase):
    """Passes a delimited text stream through, refusing a line with more fields than the
    header: pandas, when asked for some columns only (`usecols`), silently drops the extra
    fields that it reports when reading every column (as `train` does). Counting separators
    is vectorised; separators and newlines inside double quotes do not count (the parity of the
    quotes seen so far tells inside from outside, and an escaped `""` flips it twice)."""

    def __init__(self, stream: _Reader, name: str, sep: str, n_fields: int) -> None:
        super().__init__()
        self._stream, self._name, self._n_fields = stream, name, n_fields
        self._sep = ord(sep)
        self._line = 1  # the line the next byte belongs to
        self._fields = 1  # fields seen so far on that line
        self._inside = 0  # 1 while inside a quoted field

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read(-1 if size is None else size)
        if data:
            self._scan(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _scan(self, data: bytes) -> None:
        raw = np.frombuffer(data, dtype=np.uint8)
        is_newline, is_sep = raw == 10, raw == self._sep
        if b'"' in data:
            quotes = np.cumsum(raw == 34) + self._inside
            outside = quotes % 2 == 0
            is_newline &= outside
            is_sep &= outside
            self._inside = int(quotes[-1] % 2)
        ends = np.flatnonzero(is_newline)
        seps = np.cumsum(is_sep)
        # Fields per line: separators up to each newline (the first line continues the last).
        at_end = seps[ends] if len(ends) else np.empty(0, np.intp)
        counts = np.diff(np.concatenate([[0], at_end])) + 1
        if len(counts):
            counts[0] += self._fields - 1
        first_row = 2 - self._line  # index of line 2 (the first data row) in `counts`
        if 0 <= first_row < len(counts) and counts[first_row] == self._n_fields + 1:
            self._n_fields += 1  # R's write.table: no header cell over the row names (as pandas)
        bad = np.flatnonzero(counts > self._n_fields)
        bad = bad[self._line + bad > 1]  # never the header line
        if len(bad):
            first = int(bad[0])
            self._fail(self._line + first, int(counts[first]))
        if len(ends):
            self._line += len(ends)
            self._fields = int(seps[-1] - at_end[-1]) + 1
        else:
            self._fields += int(seps[-1]) if len(seps) else 0
        if self._line > 1 and self._fields > self._n_fields:
            self._fail(self._line, self._fields)

    def _fail(self, line: int, fields: int) -> None:
        raise DataError(
            f"'{self._name}' line {line} has {fields} fields but earlier lines have "
            f"{self._n_fields}; check the separator (now {_sep_name(chr(self._sep))}, change "
            "it with --sep) and quoting."
        )


def _read_prefix(
    stream: _Reader, size: int, whole_line: bool = True, limit: int = MAX_HEADER_BYTES
) -> tuple[bytes, bool]:
    """Read `size` bytes (and on to a newline, so the header is whole, but never more than
    `limit`: /dev/zero has no newline); also say if EOF came."""
    parts: list[bytes] = []
    total = 0
    newline = not whole_line
    while (total < size or not newline) and total < limit:
        chunk = stream.read(max(size - total, 1 << 16) if whole_line else size - total)
        if not chunk:
            return b"".join(parts), True
        parts.append(chunk)
        total += len(chunk)
        newline = newline or b"\n" in chunk
    return b"".join(parts), False


def _open_zstd(raw: _Reader, name: str) -> _Reader:
    try:
        import zstandard
    except ImportError:
        raise DataError(
            f"'{name}' is zstd-compressed and reading it needs the zstandard package: "
            "pip install zstandard"
        ) from None
    stream = cast(BinaryIO, raw)  # any object with read() serves; zstandard's stub says IO
    reader: _Reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    return reader


def _open_zip(raw: _Reader, name: str) -> _Reader:
    # ZipFile seeks to the central directory at the end, so buffer the (compressed) bytes;
    # they still pass through the hashing reader once.
    archive = zipfile.ZipFile(io.BytesIO(raw.read()))
    members = [
        info.filename
        for info in archive.infolist()
        if not info.is_dir() and not info.filename.startswith("__MACOSX/")
    ]
    if "xl/workbook.xml" in members:
        raise DataError(
            f"'{name}' is an Excel workbook, not a zipped table; name it .xlsx to read it "
            f"(the excel extra: {install_hint('excel')}), or save the sheet as CSV."
        )
    if len(members) != 1:
        listed = ", ".join(members[:5]) or "nothing"
        raise DataError(
            f"Zip archive '{name}' must hold exactly one table but holds {len(members)} "
            f"({listed}); unzip it and pass the table you want."
        )
    return archive.open(members[0])


@dataclass(frozen=True)
class _Codec:
    """A compression format: its magic bytes and how to open a decompressing stream."""

    name: str
    magic: bytes
    open: Callable[[_Reader, str], _Reader]


# The stdlib decompressors only ever call `read` on the stream; their stubs want a real file.
def _open_gzip(raw: _Reader, name: str) -> _Reader:
    return gzip.GzipFile(fileobj=cast(BinaryIO, raw), mode="rb")


def _open_bz2(raw: _Reader, name: str) -> _Reader:
    return bz2.BZ2File(cast(BinaryIO, raw), mode="rb")


def _open_xz(raw: _Reader, name: str) -> _Reader:
    return lzma.LZMAFile(cast(BinaryIO, raw), mode="rb")


CODECS: dict[str, _Codec] = {
    ".gz": _Codec("gzip", b"\x1f\x8b", _open_gzip),
    ".bz2": _Codec("bzip2", b"BZh", _open_bz2),
    ".xz": _Codec("xz", b"\xfd7zXZ\x00", _open_xz),
    ".zip": _Codec("zip", b"PK\x03\x04", _open_zip),
    ".zst": _Codec("zstd", b"\x28\xb5\x2f\xfd", _open_zstd),
}

#: Exceptions raised by corrupt or truncated compressed input (bz2 and gzip raise OSError).
_CODEC_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
)


def _read_head(stream: _Reader, name: str) -> tuple[bytes, bool]:
    """The sample that is sniffed: `SNIFF_BYTES` and the rest of its line, refusing a first
    line longer than `MAX_HEADER_BYTES` (a table's header is never that long)."""
    head, complete = _read_prefix(stream, SNIFF_BYTES)
    if not complete and b"\n" not in head:
        start = head[:SHOWN_CHARS].decode("utf-8", errors="replace")
        raise DataError(
            f"'{name}': the first line is longer than {format_bytes(MAX_HEADER_BYTES)} "
            f"(it starts '{start}...'); this is not a table with a header line."
        )
    return head, complete


def _codec_for(name: str, head: bytes) -> _Codec | None:
    """Compression from the outer extension, else from the magic bytes (stdin, odd names)."""
    codec = CODECS.get(Path(name).suffix.lower())
    if codec is not None:
        return codec
    return next((c for c in CODECS.values() if head.startswith(c.magic)), None)


def _sep_name(sep: str) -> str:
    """How to type a separator on a shell command line."""
    names = {"\t": "tab", r"\s+": "space"}
    return names.get(sep, f"'{sep}'")


def _resolve_sep(sep: str) -> str:
    if len(sep) == 1:
        return SEPARATORS.get(sep, sep)
    return str(choose("separator", sep.lower(), SEPARATORS))  # type: ignore[arg-type]


def _sniff_sep(name: str, text: str) -> str:
    """Separator from the extension, else csv.Sniffer on the first lines, else the first
    candidate that splits every line into the same number (> 1) of fields, else ','."""
    inner = Path(name).suffix.lower()
    if inner in CODECS:
        inner = Path(Path(name).stem).suffix.lower()
    if inner in EXTENSION_SEPARATORS:
        return EXTENSION_SEPARATORS[inner]
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    try:
        found = csv.Sniffer().sniff("\n".join(lines), delimiters=SNIFF_DELIMITERS).delimiter
        # Space-separated files are usually aligned with runs of spaces.
        return r"\s+" if found == " " else found
    except csv.Error:
        pass
    for candidate in _ALTERNATIVES:
        if _consistent_fields(text, candidate) > 1:
            return candidate
    return ","


#: Separators tried when sniffing fails or the chosen one gives a single column.
_ALTERNATIVES = (",", "\t", ";", "|", r"\s+")


def _header_cells(text: str, sep: str) -> list[str]:
    if sep == r"\s+":
        return text.split("\n", 1)[0].split()
    return next(csv.reader(io.StringIO(text), delimiter=sep), [])


def _consistent_fields(text: str, sep: str, n_records: int = 6) -> int:
    """Fields per record if the first records all have the same number under `sep`, else 0."""
    if sep == r"\s+":
        records = [line.split() for line in text.splitlines() if line.strip()][:n_records]
    else:
        rows = csv.reader(io.StringIO(text), delimiter=sep)
        records = [row for row, _ in zip(rows, range(n_records), strict=False) if row]
    if not text.endswith("\n") and len(records) > 1:
        records = records[:-1]  # the sample may end inside the last record
    counts = {len(record) for record in records}
    return counts.pop() if len(counts) == 1 else 0


def check_reading_options(sep: str | None, decimal: str, encoding: str | None) -> None:
    """The `UsageError` `read_table` would raise for these options, raised now: a model file's
    stored options are checked when it is loaded, so a damaged one is a model-file error."""
    if sep is not None:
        _resolve_sep(sep)
    if not isinstance(decimal, str) or len(decimal) != 1:
        raise UsageError(f"--decimal must be one character, got '{decimal}'.")
    _normalise_encoding(encoding)


def _normalise_encoding(encoding: str | None) -> str:
    """pandas' C engine decodes UTF-8 (and skips a BOM) natively; other codecs go through Python."""
    if encoding is None:
        return "utf-8"
    try:
        canonical = codecs.lookup(encoding).name
    except LookupError:
        raise UsageError(
            f"Unknown encoding '{encoding}' (--encoding); try utf-8, latin-1 or cp1252."
        ) from None
    return "utf-8" if canonical in ("utf-8", "utf-8-sig") else canonical


def _bytes_are_ascii(encoding: str, sep: str) -> bool:
    """Whether separators, quotes and newlines can be counted in the raw bytes: a one-character
    separator in UTF-8 or a single-byte ASCII superset (latin-1, cp1252), where no byte of
    another character can look like one of them (unlike UTF-16 or Shift JIS)."""
    if len(sep) != 1 or not sep.isascii():
        return False
    if encoding == "utf-8":
        return True
    high = bytes(range(128, 256)).decode(encoding, errors="replace")
    low = bytes(range(128)).decode(encoding, errors="replace")
    return len(high) == 128 and low == bytes(range(128)).decode("ascii")


def _decode_sample(name: str, head: bytes, encoding: str, complete: bool) -> str:
    """Decode the sniffing sample strictly, so a wrong encoding is reported with its line."""
    if not complete:
        head = head[: head.rfind(b"\n") + 1] or head
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and encoding == "utf-8":
        raise DataError(f"'{name}' is UTF-16 encoded; pass --encoding utf-16.")
    codec = "utf-8-sig" if encoding == "utf-8" else encoding  # drop a BOM
    try:
        return head.decode(codec)
    except UnicodeDecodeError as error:
        if complete or error.start < len(head) - 4:
            line = head[: error.start].count(b"\n") + 1
            byte = head[error.start : error.start + 1].hex()
            raise DataError(
                f"'{name}' is not valid {encoding.upper()}: byte 0x{byte} on line {line}; "
                "pass --encoding latin-1 (or the file's real encoding)."
            ) from None
        return head.decode(codec, errors="replace")  # cut inside a character: sniff anyway


_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")


def _warn_decimal_comma(name: str, text: str, sep: str, decimal: str) -> None:
    """Suggest --decimal , when a non-comma table is full of numbers like 0,5036."""
    if sep == "," or decimal != ".":
        return
    lines = text.splitlines()[1:50]
    pattern = sep if sep == r"\s+" else re.escape(sep)
    fields = [f.strip('"') for line in lines for f in re.split(pattern, line)]
    hits = sum(bool(_DECIMAL_COMMA.fullmatch(f)) for f in fields)
    if fields and hits >= 0.2 * len(fields):
        example = next(f for f in fields if _DECIMAL_COMMA.fullmatch(f))
        log.warning(
            "'%s': values like '%s' look like numbers with a decimal comma; "
            "pass --decimal , to read them as numbers.",
            name,
            example,
        )


def _check_header(name: str, cells: list[str], text: str, sep: str) -> None:
    """One column under `sep` but several under another delimiter: the separator is wrong."""
    if len(cells) == 1:
        for other in _ALTERNATIVES:
            n = _consistent_fields(text, other) if other != sep else 0
            if n > 1:
                raise DataError(
                    f"'{name}' has a single column when split on {_sep_name(sep)} but its "
                    f"header has {n} fields separated by {_sep_name(other)}; "
                    f"pass --sep {_sep_name(other)}."
                )
    duplicated = [cell for cell, count in Counter(cells).items() if count > 1]
    if duplicated:
        names = ", ".join(f"'{cell}'" for cell in duplicated)
        raise DataError(f"'{name}' has duplicated column names: {names}; rename them.")


_FIELDS_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _translate(
    error: BaseException, name: str, sep: str, encoding: str, codec: _Codec | None
) -> MlpcliError:
    """Turn a reading exception into a one-line error that says what to do."""
    import pandas as pd

    if isinstance(error, pd.errors.EmptyDataError):
        return DataError(f"'{name}' is empty; expected a header line and data rows.")
    if isinstance(error, UnicodeDecodeError):
        byte = error.object[error.start : error.start + 1].hex()
        return DataError(
            f"'{name}' is not valid {encoding.upper()} (byte 0x{byte}); "
            "pass --encoding latin-1 (or the file's real encoding)."
        )
    if isinstance(error, pd.errors.ParserError):
        fields = _FIELDS_ERROR.search(str(error))
        if fields:
            expected, line, saw = fields.groups()
            return DataError(
                f"'{name}' line {line} has {saw} fields but earlier lines have {expected}; "
                f"check the separator (now {_sep_name(sep)}, change it with --sep) and quoting."
            )
        detail = str(error).strip().splitlines()[-1]
        return DataError(f"Cannot parse '{name}': {detail}; check --sep and quoting.")
    if codec is not None and (
        isinstance(error, _CODEC_ERRORS) or type(error).__name__ == "ZstdError"
    ):
        return DataError(
            f"Cannot decompress '{name}' as {codec.name} ({error}); the file is corrupt, "
            "truncated or not compressed the way its name says."
        )
    if isinstance(error, OSError):
        return DataError(f"Cannot read '{name}': {error.strerror or error}.")
    return DataError(f"Cannot read '{name}': {error}.")


def _open_raw(path: str | Path, stdin: BinaryIO | None) -> tuple[BinaryIO, str]:
    if str(path) == "-":
        return (stdin if stdin is not None else sys.stdin.buffer), "<stdin>"
    name = str(path)
    try:
        return open(path, "rb", buffering=0), name
    except FileNotFoundError:
        raise DataError(f"Input file '{name}' not found; check the path.") from None
    except IsADirectoryError:
        raise DataError(f"'{name}' is a directory; pass a table file inside it.") from None
    except PermissionError:
        raise DataError(f"Cannot read '{name}': permission denied.") from None
    except OSError as error:
        raise DataError(f"Cannot open '{name}': {error.strerror}.") from None


def read_table(
    path: str | Path,
    sep: str | None = None,
    decimal: str = ".",
    na_values: Sequence[str] | None = None,
    transpose: bool = False,
    encoding: str | None = None,
    *,
    stdin: BinaryIO | None = None,
    checksum: bool = True,
    text_columns: Sequence[str] = (),
    thousands: str | None = None,
    numeric: Sequence[str] = (),
    sheet: str | None = None,
    layer: str | None = None,
    columns: Sequence[str] | None = None,
) -> Table:
    """Read a delimited table ("-" for stdin) into a frame with float32 numeric columns.

    `text_columns` (sample IDs) stay text: "007" is not the number 7. `numeric` columns are
    forced to numbers, unparseable cells becoming missing (counted in a warning). A first
    column without a header (R's row names) is named `ROW_NAMES` and becomes `id_column`.
    Parquet, Feather, Excel (`sheet`) and AnnData (`layer`) files go to their reader in
    `formats` (which reads only `columns`, when given) and then through the same checks.

    The separator comes from `sep`, else the extension (.csv, .tsv/.tab), else sniffing;
    compression from the outer extension (.gz .bz2 .xz .zip .zst), else the magic bytes.
    `sha256` is the digest of the bytes as stored (compressed, if so), or "" with
    `checksum=False`.

    Every input, plain file included, is streamed to pandas through one pass that also feeds
    the hash thread: the file is read once. Handing pandas the path instead lets it split a
    plain file across threads, but for 1M x 100 floats with the hash that was only 1.1-1.3x
    faster for 2.2x the peak memory (3.4 GB instead of 1.5 GB) and 1.3x the CPU time.
    """
    import pandas as pd

    if len(decimal) != 1:
        raise UsageError(f"--decimal must be one character, got '{decimal}'.")
    reader = formats.reader_for(path)
    if reader is not None:
        options = formats.ReadOptions(
            sheet=sheet,
            layer=layer,
            columns=columns,
            text_columns=tuple(text_columns),
            na_values=tuple(DEFAULT_NA_VALUES if na_values is None else na_values),
        )
        return _read_format(reader, str(path), options, transpose, checksum, numeric, decimal)
    for option, value in (("--sheet", sheet), ("--layer", layer)):
        if value is not None:
            raise UsageError(
                f"{option} applies to {'Excel' if option == '--sheet' else 'AnnData'} files, "
                f"not to the text table '{path}'."
            )
    resolved_sep = _resolve_sep(sep) if sep is not None else None
    encoding = _normalise_encoding(encoding)
    raw, name = _open_raw(path, stdin)
    hasher = _HashingReader(raw, enabled=checksum)
    used_sep = resolved_sep or ","
    codec = None
    try:
        magic, _ = _read_prefix(hasher, 8, whole_line=False)
        codec = _codec_for(name, magic)
        stream: _Reader = _Prefixed(magic, hasher)
        if codec is not None:
            stream = codec.open(stream, name)
        head, complete = _read_head(stream, name)
        text = _decode_sample(name, head, encoding, complete)
        if not text.strip():
            raise DataError(f"'{name}' is empty; expected a header line and data rows.")
        used_sep = resolved_sep or _sniff_sep(name, text)
        if used_sep == decimal:
            raise UsageError(
                f"The decimal mark and the separator of '{name}' are both "
                f"{_sep_name(decimal)}; pass --sep (e.g. --sep ';' with --decimal ,)."
            )
        cells = _header_cells(text, used_sep)
        _check_header(name, cells, text, used_sep)
        _warn_decimal_comma(name, text, used_sep, decimal)
        unnamed = _unnamed_first(cells, transpose)

        with warnings.catch_warnings():
            # Mixed-type columns are reported by select_columns with their row number.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame = pd.read_csv(
                _Prefixed(head, stream),
                sep=used_sep,
                decimal=decimal,
                na_values=list(DEFAULT_NA_VALUES if na_values is None else na_values),
                keep_default_na=False,
                encoding=None if encoding == "utf-8" else encoding,
                engine="c",
                compression=None,
                dtype=dict.fromkeys([*text_columns, *unnamed], "str") or None,
                thousands=thousands,
            )
        sha256 = hasher.hexdigest()
    except MlpcliError:
        raise
    except Exception as error:
        raise _translate(error, name, used_sep, encoding, codec) from None
    finally:
        hasher.close()
        if name != "<stdin>":
            raw.close()
    if len(frame) == 0:
        raise DataError(f"'{name}' has a header but no data rows.")
    id_column = None
    if transpose:
        id_column = cells[0].strip() if cells and cells[0].strip() else "sample"
        frame = _transpose(frame, name, id_column, decimal)
    else:
        frame, id_column = _row_names(frame, name, bool(unnamed))
    frame = force_numeric(_to_float32(frame), numeric, name)
    return Table(frame=frame, source=name, sha256=sha256, sep=used_sep, id_column=id_column)


def _read_format(
    reader: formats.FormatReader,
    name: str,
    options: formats.ReadOptions,
    transpose: bool,
    checksum: bool,
    numeric: Sequence[str],
    decimal: str,
) -> Table:
    """A binary table through its reader, then the layout and typing steps of a text one."""
    if not Path(name).is_file():
        _open_raw(name, None)[0].close()  # the same "not found" / "is a directory" messages
    hasher = _FileHasher(name) if checksum else None
    result = reader.read(name, options)
    frame, id_column = result.frame, result.id_column
    if len(frame) == 0:
        raise DataError(f"'{name}' has a header but no data rows.")
    if transpose:
        if id_column is not None:
            raise UsageError(
                f"--transpose does not apply to '{name}' ({reader.name}): its rows are already "
                "samples."
            )
        id_column = str(frame.columns[0]) or "sample"
        frame = _transpose(frame, name, id_column, decimal)
    frame = force_numeric(_to_float32(frame), numeric, name)
    sha256 = hasher.hexdigest() if hasher is not None else ""
    return Table(frame=frame, source=name, sha256=sha256, sep="", id_column=id_column)


def _unnamed_first(cells: Sequence[str], transpose: bool) -> list[str]:
    """pandas' name for an empty first header cell (read as text: row names are labels)."""
    if transpose or len(cells) < 2 or cells[0].strip():
        return []
    return ["Unnamed: 0"]


def _row_names(
    frame: pd.DataFrame, name: str, unnamed: bool, quiet: bool = False
) -> tuple[pd.DataFrame, str | None]:
    """R tables: `write.csv` leaves the first header cell empty, `write.table` leaves it out
    (pandas then makes the first column the index). Either way it is the row ID."""
    import pandas as pd

    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.rename_axis(ROW_NAMES).reset_index()
        frame[ROW_NAMES] = frame[ROW_NAMES].astype("str")
    elif unnamed:
        frame = frame.rename(columns={frame.columns[0]: ROW_NAMES})
    else:
        return frame, None
    if ROW_NAMES in frame.columns[1:]:
        raise DataError(f"'{name}' has a column '{ROW_NAMES}' and unnamed row names; rename it.")
    if not quiet:
        log.info(
            "'%s': the first column has no header (R row names); it is the row ID '%s'.",
            name,
            ROW_NAMES,
        )
    return frame, ROW_NAMES


def force_numeric(frame: pd.DataFrame, names: Sequence[str], source: str) -> pd.DataFrame:
    """`--numeric COL`: cells that do not parse as numbers become missing, with a warning that
    counts them (absent names are left to `select_columns` to report)."""
    import pandas as pd

    for name in names:
        if name not in frame.columns or pd.api.types.is_numeric_dtype(frame[name]):
            continue
        column = frame[name]
        numbers = pd.to_numeric(column, errors="coerce")
        lost = numbers.isna() & column.notna()
        if lost.any():
            log.warning(
                "Column '%s'%s (--numeric): %d cell(s) that are not numbers read as missing (%s).",
                name,
                _where(source),
                int(lost.sum()),
                _token_counts(column[lost]),
            )
        frame[name] = numbers.astype(np.float32)
    return frame


def _token_counts(values: pd.Series, limit: int = 5) -> str:
    """`'other' x40, 'n/d' x2`: the distinct offending cells with their counts, most first."""
    counts = values.astype("str").value_counts()
    shown = ", ".join(
        f"'{shorten(token)}' x{count}" for token, count in counts.iloc[:limit].items()
    )
    return shown + (f" and {len(counts) - limit} more" if len(counts) > limit else "")


def _to_float32(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast float64 columns after parsing: cheaper than parsing as float32 (PERF_NOTES), and
    one `astype` is 3x faster than assigning column by column (1M x 100: 0.06 s)."""
    float64 = frame.columns[frame.dtypes == np.float64]
    with np.errstate(over="ignore"):
        if len(float64) == frame.shape[1]:
            return frame.astype(np.float32)  # keeps a single block a single block
        return frame.astype(dict.fromkeys(float64, np.float32))


class TableChunks:
    """A table read `chunk_size` rows at a time, so memory stays flat however long it is.

    Opened like `read_table` (same separator, compression, encoding, missing-value tokens,
    header checks and error messages); iterating yields float32-cast frames in file order whose
    index continues across chunks (row i of the file has index i). `sha256()` is the digest of
    the stored bytes once every chunk is read. `text_columns` (e.g. sample IDs) are read as
    text, so "007" stays "007" in every chunk; with `usecols` other columns are skipped
    (wide tables predict faster). With `transpose` the whole table is read first: its samples
    are columns, which cannot be streamed.
    """

    def __init__(
        self,
        path: str | Path,
        chunk_size: int,
        sep: str | None = None,
        decimal: str = ".",
        na_values: Sequence[str] | None = None,
        transpose: bool = False,
        encoding: str | None = None,
        *,
        text_columns: Sequence[str] = (),
        usecols: Sequence[str] | None = None,
        stdin: BinaryIO | None = None,
        checksum: bool = True,
        thousands: str | None = None,
        numeric: Sequence[str] = (),
        sheet: str | None = None,
        layer: str | None = None,
    ) -> None:
        import pandas as pd

        if chunk_size < 1:
            raise UsageError(f"--chunk-size must be at least 1 row, got {chunk_size}.")
        if len(decimal) != 1:
            raise UsageError(f"--decimal must be one character, got '{decimal}'.")
        self.chunk_size = chunk_size
        self._whole: Table | None = None
        self._reader: Any = None
        self._hasher: _HashingReader | None = None
        self._raw: BinaryIO | None = None
        self._codec: _Codec | None = None
        self._digest: Callable[[], str] = str
        self._numeric = tuple(numeric)
        self._unnamed = False
        self.id_column: str | None = None
        if transpose or sheet is not None or layer is not None or formats.reader_for(path):
            # Samples as columns cannot be streamed; binary formats are memory-mapped instead.
            self._whole = read_table(
                path,
                sep,
                decimal,
                na_values,
                transpose,
                encoding,
                stdin=stdin,
                checksum=checksum,
                text_columns=text_columns,
                thousands=thousands,
                numeric=numeric,
                sheet=sheet,
                layer=layer,
                columns=None if usecols is None else [*usecols, *text_columns],
            )
            self.source, self.sep, self._encoding = self._whole.source, self._whole.sep, ""
            self.id_column = self._whole.id_column
            return
        resolved_sep = _resolve_sep(sep) if sep is not None else None
        self._encoding = encoding = _normalise_encoding(encoding)
        raw, name = _open_raw(path, stdin)
        self.source, self.sep = name, resolved_sep or ","
        self._raw = raw if name != "<stdin>" else None
        regular = name != "<stdin>" and stat.S_ISREG(os.fstat(raw.fileno()).st_mode)
        hasher = self._hasher = _HashingReader(raw, enabled=checksum)
        try:
            magic, _ = _read_prefix(hasher, 8, whole_line=False)
            self._codec = codec = _codec_for(name, magic)
            stream: _Reader = _Prefixed(magic, hasher)
            if codec is not None:
                stream = codec.open(stream, name)
            head, complete = _read_head(stream, name)
            text = _decode_sample(name, head, encoding, complete)
            if not text.strip():
                raise DataError(f"'{name}' is empty; expected a header line and data rows.")
            self.sep = resolved_sep or _sniff_sep(name, text)
            if self.sep == decimal:
                raise UsageError(
                    f"The decimal mark and the separator of '{name}' are both "
                    f"{_sep_name(decimal)}; pass --sep (e.g. --sep ';' with --decimal ,)."
                )
            cells = _header_cells(text, self.sep)
            _check_header(name, cells, text, self.sep)
            _warn_decimal_comma(name, text, self.sep, decimal)
            unnamed = _unnamed_first(cells, False)
            self._unnamed = bool(unnamed)
            prefixed = _Prefixed(head, stream)
            source: str | Path | _Prefixed | _FieldCheck = prefixed
            self._digest = hasher.hexdigest
            # Only some columns are parsed: pandas then ignores extra fields, so count them.
            check_fields = usecols is not None and _bytes_are_ascii(encoding, self.sep)
            if check_fields:
                source = _FieldCheck(prefixed, name, self.sep, len(cells))
            elif regular and codec is None:
                hasher.close()  # pandas reads the path itself; hash the file alongside
                source, self._digest = path, _FileHasher(path).hexdigest if checksum else str
            self._reader = pd.read_csv(
                source,
                sep=self.sep,
                decimal=decimal,
                na_values=list(DEFAULT_NA_VALUES if na_values is None else na_values),
                keep_default_na=False,
                encoding=None if encoding == "utf-8" else encoding,
                engine="c",
                compression=None,
                chunksize=chunk_size,
                dtype=dict.fromkeys([*text_columns, *unnamed], "str") or None,
                # A callable, so absent names are left for the caller to report all at once.
                usecols=None if usecols is None else {*usecols, *unnamed}.__contains__,
                thousands=thousands,
            )
        except MlpcliError:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise _translate(error, name, self.sep, encoding, self._codec) from None

    def __iter__(self) -> Iterator[pd.DataFrame]:
        import pandas as pd

        if self._whole is not None:
            frame = self._whole.frame
            for start in range(0, len(frame), self.chunk_size):
                yield frame.iloc[start : start + self.chunk_size]
            return
        n_rows = 0
        while True:
            try:
                with warnings.catch_warnings():
                    # Mixed-type columns are reported with their row by whoever uses them.
                    warnings.simplefilter("ignore", pd.errors.DtypeWarning)
                    frame = next(self._reader)
            except StopIteration:
                break
            except MlpcliError:
                raise
            except Exception as error:
                raise _translate(
                    error, self.source, self.sep, self._encoding, self._codec
                ) from None
            frame, self.id_column = _row_names(frame, self.source, self._unnamed, quiet=n_rows > 0)
            frame.index = pd.RangeIndex(n_rows, n_rows + len(frame))
            n_rows += len(frame)
            yield force_numeric(_to_float32(frame), self._numeric, self.source)
        if n_rows == 0:
            raise DataError(f"'{self.source}' has a header but no data rows.")

    def sha256(self) -> str:
        """Digest of the bytes as stored ("" when opened with `checksum=False`)."""
        if self._whole is not None:
            return self._whole.sha256
        try:
            return self._digest()
        except Exception as error:
            raise _translate(error, self.source, self.sep, self._encoding, self._codec) from None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._hasher is not None:
            self._hasher.close()
        if self._raw is not None:
            self._raw.close()

    def __enter__(self) -> TableChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _transpose(frame: pd.DataFrame, name: str, first_cell: str, decimal: str) -> pd.DataFrame:
    """Features x samples (first column = feature names) to samples x features."""
    import pandas as pd

    label = frame.columns[0]
    feature_names = frame[label]
    if feature_names.isna().any():
        row = _first_row(feature_names.isna().to_numpy())
        raise DataError(f"'{name}' (--transpose): data row {row} has no name in its first column.")
    feature_names = feature_names.astype(str)
    duplicated = feature_names[feature_names.duplicated()].unique().tolist()
    if duplicated:
        shown = ", ".join(f"'{n}'" for n in duplicated[:5])
        raise DataError(
            f"'{name}' (--transpose): duplicated feature names in the first column: {shown}; "
            "rename or aggregate them."
        )
    sample_column = first_cell or "sample"
    if sample_column in set(feature_names):
        raise DataError(
            f"'{name}' (--transpose): a feature is named '{sample_column}' like the sample "
            "column; rename it."
        )
    body = frame.drop(columns=label)
    body.index = pd.Index(feature_names.to_numpy())
    sample_ids = pd.Series(body.columns.astype(str), dtype="str")
    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in body.dtypes):
        samples = _to_float32(body.T.reset_index(drop=True))  # one numeric block
    else:
        samples = _reinfer(body.T.reset_index(drop=True), decimal)
    samples.insert(0, sample_column, sample_ids)
    return samples


def _reinfer(samples: pd.DataFrame, decimal: str) -> pd.DataFrame:
    """Re-type transposed columns: numeric if every non-missing cell parses as a number.

    A text row (a subtype, say) made every sample column text, so all cells arrive as strings
    with the decimal mark unapplied. One vectorised parse of all cells, not one per column:
    reading 20,000 genes x 200 samples with one text row takes 2.5 s instead of 6.5 s.
    """
    import pandas as pd

    cells = samples.to_numpy(dtype=object)
    text = pd.Series(cells.ravel(), dtype=object).astype(str)  # floats: repr round-trips
    if decimal != ".":
        text = text.str.replace(decimal, ".", regex=False)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(np.float64).reshape(cells.shape)
    numeric = (~np.isnan(numbers) | pd.isna(cells)).all(axis=0)
    parts = [
        pd.DataFrame(numbers[:, numeric].astype(np.float32), columns=samples.columns[numeric]),
        samples.loc[:, ~numeric].astype("str"),
    ]
    return pd.concat(parts, axis=1)[samples.columns]


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------


def _where(source: str) -> str:
    return f" in '{source}'" if source else ""


def _is_pattern(name: str) -> bool:
    return any(char in name for char in "*?[")


def _suggest(name: str, columns: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    lowered = [c for c in columns if c.lower() == name.lower() and c not in close]
    close = lowered + close
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
    return f"columns are: {shown}"


def _missing_column(kind: str, name: str, columns: Sequence[str], source: str) -> DataError:
    return DataError(f"{kind} column '{name}' not found{_where(source)}; {_suggest(name, columns)}")


def _expand(names: Sequence[str], columns: Sequence[str], option: str, source: str) -> list[str]:
    """Names and fnmatch patterns to matching columns, in table order; unmatched is an error."""
    chosen: set[str] = set()
    for name in names:
        if _is_pattern(name):
            matched = fnmatch.filter(columns, name)
            if not matched:
                raise DataError(
                    f"{option} pattern '{name}' matches no column{_where(source)}; "
                    f"{_suggest(name.strip('*?[]'), columns)}"
                )
            chosen.update(matched)
        elif name in columns:
            chosen.add(name)
        else:
            raise _missing_column(option, name, columns, source)
    return [c for c in columns if c in chosen]


def _looks_like_id_name(name: str) -> bool:
    compact = re.sub(r"[^a-z0-9]", "", name.lower())
    return compact in ID_NAMES or compact.endswith("id") or name.lower().endswith("_id")


def _is_unique_text(column: pd.Series) -> bool:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        return False
    values = column.dropna()
    return len(values) > 1 and values.is_unique


def _first_row(mask: NDArray[np.bool_]) -> int:
    """1-based data row of the first True."""
    return int(np.flatnonzero(mask)[0]) + 1


def _check_numeric(column: pd.Series, name: str, source: str) -> None:
    """Inf and absurd magnitudes break float32 training; name the first one."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_integer_dtype(column):
        return
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values) | (np.abs(values) > MAX_ABS_VALUE)
    if bad.any():
        row = _first_row(bad)
        value = values[row - 1]
        what = (
            "an infinite value (or one beyond float32's range)"
            if np.isinf(value)
            else (f"the value {value:.3g} (|x| > {MAX_ABS_VALUE:.0e})")
        )
        raise DataError(
            f"Column '{name}'{_where(source)} has {what} in data row {row}; fix or blank the "
            f"cell, or leave the column out with --drop {shlex.quote(name)}."
        )


_THOUSANDS = re.compile(r"[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")


def _check_text(column: pd.Series, name: str, source: str, strict: bool = False) -> None:
    """A text column that is numbers with separators, or numbers and a few other tokens, stays
    categorical with a warning naming what was found and the option that reads it as numbers."""
    import pandas as pd

    present = column.notna().to_numpy()
    n_present = int(present.sum())
    texts = column.astype("str")
    numbers = pd.to_numeric(column, errors="coerce").notna().to_numpy()
    thousands = texts.str.fullmatch(_THOUSANDS.pattern).fillna(False).to_numpy(bool)
    if thousands.any() and (thousands | numbers | ~present).all():
        row = _first_row(thousands)
        warn_or_fail(
            f"Column '{name}'{_where(source)} holds numbers with a thousands separator "
            f"('{texts.iloc[row - 1]}' in data row {row}), so it is read as categorical; pass "
            "--thousands , to read them as numbers.",
            strict,
        )
        return
    decimal_comma = texts.str.fullmatch(_DECIMAL_COMMA.pattern).fillna(False).to_numpy(bool)
    if n_present and int(decimal_comma.sum()) >= NUMERIC_SHARE * n_present:
        row = _first_row(decimal_comma)
        raise DataError(
            f"Column '{name}'{_where(source)} holds numbers with a decimal comma "
            f"('{shorten(texts.iloc[row - 1])}' in data row {row}); pass --decimal , "
            f"(or --categorical {shlex.quote(name)} to keep it as text)."
        )
    junk = present & ~numbers
    if n_present and int(numbers.sum()) >= MOSTLY_NUMERIC * n_present and junk.any():
        row = _first_row(junk)
        token = shorten(column.iloc[row - 1])
        warn_or_fail(
            f"Column '{name}'{_where(source)} is mostly numeric but {int(junk.sum())} of its "
            f"{n_present} values are not numbers ({_token_counts(column[junk])}; first in data "
            f"row {row}), so it is read as categorical. If '{token}' marks a missing value, "
            f"add it with --na-values {shlex.quote(token)} (the list replaces the default "
            f"tokens); or pass --numeric {shlex.quote(name)} to read such cells as missing.",
            strict,
        )


def _is_numeric_id(column: pd.Series, name: str) -> bool:
    """Integers that name rows: a column called like an ID with (almost) all values distinct,
    or any column holding exactly the row numbers 1..n (or 0..n-1) in some order."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return False
    values = column.dropna().to_numpy(dtype=np.float64)
    if len(values) < 2 or not np.all(np.isfinite(values)) or np.any(np.mod(values, 1.0)):
        return False
    n_distinct = len(np.unique(values))
    if _looks_like_id_name(name):
        return n_distinct >= ID_DISTINCT_SHARE * len(values)
    return (
        len(values) == len(column) >= 20
        and n_distinct == len(values)
        and values.max() - values.min() == len(values) - 1
    )


def select_columns(
    frame: pd.DataFrame,
    targets: Sequence[str],
    ids: Sequence[str] = (),
    features: Sequence[str] | None = None,
    drop: Sequence[str] = (),
    categorical: Sequence[str] = (),
    source: str = "",
    *,
    numeric: Sequence[str] = (),
    strict: bool = False,
) -> ColumnSelection:
    """Choose target, id and feature columns and check the features are usable.

    `features`, `drop`, `categorical` and `numeric` take names and fnmatch patterns. By default
    every column other than targets, ids and dropped ones is a feature, except unique text
    columns named like sample IDs and integer columns that look like IDs or row numbers, which
    are left out with a warning, and entirely empty columns, dropped with one warning for all.
    With `strict` those warnings (and the mostly-numeric ones) are errors.
    """
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    targets = list(dict.fromkeys(targets))
    ids = list(dict.fromkeys(ids))
    if not targets:
        raise UsageError("Name the column to predict with --target.")
    for name in targets:
        if name not in columns:
            raise _missing_column("Target", name, columns, source)
    for name in ids:
        if name not in columns:
            raise _missing_column("--id", name, columns, source)
    for name in targets:
        if name in ids:
            raise UsageError(f"Column '{name}' is given both as --target and as --id.")
        if name in drop:
            raise UsageError(f"Column '{name}' is given both as --target and in --drop.")
        if features is not None and name in features:
            raise UsageError(
                f"Column '{name}' is given both as --target and in --features; a target cannot "
                "be its own input."
            )
    dropped = set(_expand(drop, columns, "--drop", source))
    wanted = set(columns if features is None else _expand(features, columns, "--features", source))
    named_categorical = set(_expand(categorical, columns, "--categorical", source))
    named_numeric = set(_expand(numeric, columns, "--numeric", source))
    excluded = set(targets) | set(ids) | dropped
    chosen = [c for c in columns if c in wanted and c not in excluded]

    # Exact names the user typed are kept as given; only defaults and glob matches are vetted.
    explicit = {n for n in (*(features or ()), *categorical, *numeric) if not _is_pattern(n)}
    unique_text = {n for n in chosen if n not in explicit and _is_unique_text(frame[n])}
    kept = []
    for name in chosen:
        if name in unique_text and _looks_like_id_name(name):
            warn_or_fail(
                f"Column '{name}'{_where(source)} looks like a sample ID (a different text "
                f"value in every row), so it is not used as a feature; pass --id "
                f"{shlex.quote(name)} to say so.",
                strict,
            )
            continue
        if name not in explicit and _is_numeric_id(frame[name], name):
            n_distinct = frame[name].nunique()
            warn_or_fail(
                f"Column '{name}'{_where(source)} looks like a numeric sample ID ({n_distinct} "
                f"distinct integers in {int(frame[name].notna().sum())} rows), so it is not "
                f"used as a feature; pass --id {shlex.quote(name)} to carry it into "
                f"predictions, or --numeric {shlex.quote(name)} to use it as a feature.",
                strict,
            )
            continue
        kept.append(name)
    empty = [name for name in kept if frame[name].isna().all()]
    if empty:
        warn_or_fail(
            f"{len(empty)} column(s){_where(source)} are entirely missing and are left out: "
            f"{', '.join(repr(n) for n in empty)}.",
            strict,
        )
        kept = [name for name in kept if name not in set(empty)]
    if not kept:
        raise DataError(
            f"No feature columns left{_where(source)} after setting aside targets, ids and "
            "--drop; check --features and --drop."
        )

    for name in kept:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            _check_numeric(column, name, source)
        elif name not in named_categorical and name not in named_numeric:
            _check_text(column, name, source, strict)
    lonely = [name for name in kept if name in unique_text]
    if lonely and len(frame) > 20:
        shown = ", ".join(f"'{n}'" for n in lonely[:5]) + (", ..." if len(lonely) > 5 else "")
        log.warning(
            "Text column(s) %s%s hold a different value in every row, so as categorical "
            "features they cannot generalise; consider --drop or --id.",
            shown,
            _where(source),
        )
    categorical_features = [
        c for c in kept if c in named_categorical or not pd.api.types.is_numeric_dtype(frame[c])
    ]
    if len(kept) > len(frame):
        log.warning(
            "%s has more features (%d) than rows (%d); expect overfitting, consider "
            "--features or --drop to use fewer columns.",
            f"'{source}'" if source else "The table",
            len(kept),
            len(frame),
        )
    return ColumnSelection(
        targets=targets, ids=ids, features=kept, categorical=categorical_features
    )


# --------------------------------------------------------------------------------------------
# Targets and task
# --------------------------------------------------------------------------------------------


def drop_missing_targets(
    frame: pd.DataFrame, targets: Sequence[str], *, source: str = ""
) -> tuple[pd.DataFrame, int]:
    """Drop rows with a missing target, renumbering rows from 0; the caller reports the count."""
    present = frame[list(targets)].notna()
    for name in targets:
        if not present[name].any():
            raise DataError(
                f"Target column '{name}'{_where(source)} has no values (all {len(frame)} rows "
                "are missing)."
            )
    keep = present.all(axis=1).to_numpy()
    n_dropped = int((~keep).sum())
    if n_dropped == 0:
        return frame, 0
    if not keep.any():
        raise DataError(f"No row{_where(source)} has all targets ({', '.join(targets)}) present.")
    return frame.loc[keep].reset_index(drop=True), n_dropped


def _format_label(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer():
            return str(int(value))
        return np.format_float_positional(value, trim="-")  # shortest repr for its dtype
    return str(value)


def as_label_strings(column: pd.Series) -> pd.Series:
    """Target values as the class-label strings of `TaskInfo.labels` (missing stays missing)."""
    import pandas as pd

    codes, uniques = pd.factorize(column)
    # Format the uniques in their own dtype: float32 0.1 is "0.1", not "0.10000000149011612".
    labels = np.array([_format_label(v) for v in np.asarray(uniques)] + [None], dtype=object)
    return pd.Series(labels[codes], index=column.index, name=column.name, dtype="str")


@dataclass
class _Target:
    """What task detection needs to know about one target column."""

    name: str
    kind: str  # "text", "bool" or "numeric"
    distinct: list[Any]  # sorted; numpy scalars for numeric targets
    n_rows: int

    @property
    def labels(self) -> list[str]:
        return [_format_label(v) for v in self.distinct]

    @property
    def adjective(self) -> str:
        return {"text": "string", "bool": "boolean"}.get(self.kind, self.kind)

    @property
    def integer_valued(self) -> bool:
        return self.kind == "numeric" and all(float(v).is_integer() for v in self.distinct)

    @property
    def zero_one(self) -> bool:
        return self.kind == "bool" or (
            self.kind == "numeric" and {float(v) for v in self.distinct} <= {0.0, 1.0}
        )

    def shown(self, limit: int = 5) -> str:
        labels = self.labels
        return ", ".join(labels[:limit]) + (", ..." if len(labels) > limit else "")


def _describe(frame: pd.DataFrame, name: str, source: str) -> _Target:
    import pandas as pd

    column = frame[name].dropna()
    if len(column) == 0:
        raise DataError(f"Target column '{name}'{_where(source)} has no values.")
    if pd.api.types.is_bool_dtype(column):
        kind = "bool"
    elif pd.api.types.is_numeric_dtype(column):
        kind = "numeric"
        _check_numeric(column.reset_index(drop=True), name, source)
    elif all(isinstance(v, (bool, np.bool_)) for v in column.unique()):
        kind = "bool"  # booleans with missing values come back as object
    else:
        kind = "text"
        column = as_label_strings(column)  # mixed cells: 1.0 and "1" are one label, as elsewhere
    # Keep numpy scalars: float32 0.1 must become the label "0.1".
    values = column.to_numpy() if kind == "numeric" else column.to_numpy(dtype=object)
    distinct = sorted(np.unique(values)) if kind == "numeric" else sorted(set(values))
    if len(distinct) == 1:
        raise DataError(
            f"Target column '{name}'{_where(source)} has the single value "
            f"'{_format_label(distinct[0])}' in all {len(column)} rows; there is nothing to learn."
        )
    return _Target(name=name, kind=kind, distinct=distinct, n_rows=len(column))


def _one_target(targets: list[_Target], task: str) -> _Target:
    if len(targets) != 1:
        names = ", ".join(t.name for t in targets)
        raise UsageError(
            f"--task {task} takes one target but got {len(targets)} ({names}); use "
            "--task multilabel for several 0/1 targets or --task regression for numeric ones."
        )
    return targets[0]


def _classes(target: _Target, task: str, reason: str) -> TaskInfo:
    return TaskInfo(task=task, reason=reason, labels=target.labels)


def _auto(targets: list[_Target]) -> TaskInfo:
    if len(targets) > 1:
        names = ", ".join(f"'{t.name}'" for t in targets)
        if all(t.zero_one for t in targets):
            return TaskInfo(
                "multilabel", f"targets {names} all hold only 0/1 values", [t.name for t in targets]
            )
        if all(t.kind == "numeric" for t in targets):
            return TaskInfo("regression", f"targets {names} are all numeric", None)
        raise UsageError(
            f"Targets {names} mix text and numbers; train one target at a time, or pass "
            "several 0/1 targets (multilabel) or several numeric ones (regression)."
        )
    t = targets[0]
    n = len(t.distinct)
    if t.kind != "numeric":
        task = "binary" if n == 2 else "multiclass"
        return _classes(t, task, f"target '{t.name}' has {n} {t.adjective} values ({t.shown()})")
    if n == 2:
        return _classes(t, "binary", f"target '{t.name}' has two numeric values ({t.shown()})")
    if t.integer_valued and n <= MAX_AUTO_CLASSES and n < CLASS_SHARE * t.n_rows:
        reason = (
            f"target '{t.name}' has {n} distinct integer values ({t.shown()}) in {t.n_rows} rows"
        )
        return _classes(t, "multiclass", reason)
    return TaskInfo("regression", f"target '{t.name}' is numeric with {n} distinct values", None)


def _binary(targets: list[_Target]) -> TaskInfo:
    t = _one_target(targets, "binary")
    if len(t.distinct) != 2:
        raise UsageError(
            f"--task binary needs two classes but target '{t.name}' has {len(t.distinct)} "
            f"({t.shown()}); use --task multiclass or auto."
        )
    return _classes(t, "binary", f"--task binary; target '{t.name}' has classes {t.shown()}")


def _multiclass(targets: list[_Target]) -> TaskInfo:
    t = _one_target(targets, "multiclass")
    if t.kind == "numeric" and not t.integer_valued:
        raise UsageError(
            f"--task multiclass needs class labels but target '{t.name}' has non-integer "
            f"numbers ({t.shown()}); use --task regression."
        )
    reason = f"--task multiclass; target '{t.name}' has {len(t.distinct)} classes"
    return _classes(t, "multiclass", reason)


def _multilabel(targets: list[_Target]) -> TaskInfo:
    if len(targets) < 2:
        raise UsageError(
            "--task multilabel needs several 0/1 target columns (--target a --target b); "
            "for one target use --task binary."
        )
    for t in targets:
        if not t.zero_one:
            raise UsageError(
                f"--task multilabel needs 0/1 targets but '{t.name}' holds {t.shown()}."
            )
    names = ", ".join(f"'{t.name}'" for t in targets)
    return TaskInfo(
        "multilabel", f"--task multilabel; 0/1 targets {names}", [t.name for t in targets]
    )


def _regression(targets: list[_Target]) -> TaskInfo:
    for t in targets:
        if t.kind != "numeric":
            raise UsageError(
                f"--task regression needs numeric targets but '{t.name}' holds {t.adjective} "
                f"values ({t.shown()}); use --task binary, multiclass or auto."
            )
    names = ", ".join(f"'{t.name}'" for t in targets)
    return TaskInfo("regression", f"--task regression; numeric target(s) {names}", None)


TASK_RULES: dict[str, Callable[[list[_Target]], TaskInfo]] = {
    "auto": _auto,
    "binary": _binary,
    "multiclass": _multiclass,
    "multilabel": _multilabel,
    "regression": _regression,
}


def detect_task(
    frame: pd.DataFrame, targets: Sequence[str], task: str = "auto", *, source: str = ""
) -> TaskInfo:
    """Choose the task from the target values (`auto`) or check that an explicit one fits.

    Auto: text or boolean target -> binary/multiclass; two numeric values -> binary; integer
    values with at most MAX_AUTO_CLASSES distinct values and fewer than CLASS_SHARE x rows ->
    multiclass; otherwise regression. Several targets: all 0/1 -> multilabel, all numeric ->
    multi-output regression. Missing target values are ignored (drop them first).
    """
    rule = choose("task", task, TASK_RULES)  # type: ignore[arg-type]
    if not targets:
        raise UsageError("Name the column to predict with --target.")
    described = [_describe(frame, name, source) for name in dict.fromkeys(targets)]
    return rule(described)  # type: ignore[operator]
