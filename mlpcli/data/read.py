"""Reading a table: the file or stdin, its compression and separator (sniffed), the header
checks, R row names and `--transpose`, and chunked reading for predict/evaluate.

Input is what bioinformatics pipelines produce: CSV/TSV (or `;` with decimal commas from a
European Excel), possibly compressed, possibly on stdin, possibly a features x samples matrix.
pandas is imported inside the functions: `mlpcli --help` must not pay its 0.4 s import.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import logging
import os
import re
import stat
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from mlpcli.data import cache, formats
from mlpcli.data.cache import canonical
from mlpcli.data.codecs import (
    CODEC_ERRORS,
    Codec,
    FileHasher,
    HashingReader,
    Prefixed,
    Reader,
    codec_for,
    extension_separator,
    read_prefix,
)
from mlpcli.errors import (
    DataError,
    MlpcliError,
    UsageError,
    choose,
    offers,
)
from mlpcli.limits import MAX_HEADER_BYTES, SHOWN_CHARS, format_bytes, shorten

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mlpcli")


#: Cells read as missing unless `na_values` replaces the list (pandas' longer default list
#: would turn a gene called "NA" or a genotype "null" into NaN behind the user's back).
DEFAULT_NA_VALUES: tuple[str, ...] = ("", "NA", "N/A", "NaN", "nan", "null", "?", ".")


#: A chunked read parses every column (and drops the unused ones) when at most 1/this of the
#: header's columns are unused; wider skips parse only the used columns and count fields.
PARSE_ALL_SHARE = 4

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


#: Candidates for sniffing, in csv.Sniffer's order of preference.
SNIFF_DELIMITERS = ",\t;| "


#: Bytes of (decompressed) text looked at to sniff the separator and read the header.
SNIFF_BYTES = 64 * 1024


#: Name given to a first column without a header: R's `write.csv` row names.
ROW_NAMES = "row_name"


@dataclass
class Table:
    """A table as read: the frame, a display name, and the sha256 of the bytes on disk."""

    frame: pd.DataFrame
    source: str
    sha256: str
    sep: str = ","
    #: A column the layout marks as the row ID (R row names, the --transpose corner cell).
    id_column: str | None = None


class _FieldCheck(io.RawIOBase):
    """Passes a delimited text stream through, refusing a line with more fields than the
    header: pandas, when asked for some columns only (`usecols`), silently drops the extra
    fields that it reports when reading every column (as `train` does). Counting separators
    is vectorised; separators and newlines inside double quotes do not count (the parity of the
    quotes seen so far tells inside from outside, and an escaped `""` flips it twice)."""

    def __init__(self, stream: Reader, name: str, sep: str, n_fields: int) -> None:
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


def _read_head(stream: Reader, name: str) -> tuple[bytes, bool]:
    """The sample that is sniffed: `SNIFF_BYTES` and the rest of its line, refusing a first
    line longer than `MAX_HEADER_BYTES` (a table's header is never that long)."""
    head, complete = read_prefix(stream, SNIFF_BYTES)
    if not complete and b"\n" not in head:
        start = head[:SHOWN_CHARS].decode("utf-8", errors="replace")
        raise DataError(
            f"'{name}': the first line is longer than {format_bytes(MAX_HEADER_BYTES)} "
            f"(it starts '{start}...'); this is not a table with a header line."
        )
    return head, complete


def _sep_name(sep: str) -> str:
    """How to type a separator on a shell command line."""
    names = {"\t": "tab", r"\s+": "space"}
    return names.get(sep, f"'{sep}'")


def _resolve_sep(sep: str) -> str:
    if len(sep) == 1:
        return SEPARATORS.get(sep, sep)
    return str(choose("separator", sep.lower(), SEPARATORS))


def _sniff_sep(name: str, text: str) -> str:
    """Separator from the extension, else csv.Sniffer on the first lines, else the first
    candidate that splits every line into the same number (> 1) of fields, else ','."""
    implied = extension_separator(name)
    if implied is not None:
        return implied
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


def _other_encoding(guess: str) -> str:
    """What to do about a file in another encoding: `--encoding`, or where the command reads
    with the model's stored encoding (predict, evaluate, explain), converting the file."""
    if offers("--encoding"):
        real = "" if guess == "utf-16" else " (or the file's real encoding)"
        return f"pass --encoding {guess}{real}"
    return (
        "convert it to the encoding the model's training table had (e.g. "
        f"iconv -f {guess} -t utf-8 for UTF-8)"
    )


def _decode_sample(name: str, head: bytes, encoding: str, complete: bool) -> str:
    """Decode the sniffing sample strictly, so a wrong encoding is reported with its line."""
    if not complete:
        head = head[: head.rfind(b"\n") + 1] or head
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and encoding == "utf-8":
        raise DataError(f"'{name}' is UTF-16 encoded; {_other_encoding('utf-16')}.")
    codec = "utf-8-sig" if encoding == "utf-8" else encoding  # drop a BOM
    try:
        return head.decode(codec)
    except UnicodeDecodeError as error:
        if complete or error.start < len(head) - 4:
            line = head[: error.start].count(b"\n") + 1
            byte = head[error.start : error.start + 1].hex()
            raise DataError(
                f"'{name}' is not valid {encoding.upper()}: byte 0x{byte} on line {line}; "
                f"{_other_encoding('latin-1')}."
            ) from None
        return head.decode(codec, errors="replace")  # cut inside a character: sniff anyway


DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")


def _warn_decimal_comma(name: str, text: str, sep: str, decimal: str) -> None:
    """Suggest --decimal , when a non-comma table is full of numbers like 0,5036."""
    if sep == "," or decimal != ".":
        return
    lines = text.splitlines()[1:50]
    pattern = sep if sep == r"\s+" else re.escape(sep)
    fields = [f.strip('"') for line in lines for f in re.split(pattern, line)]
    hits = sum(bool(DECIMAL_COMMA.fullmatch(f)) for f in fields)
    if fields and hits >= 0.2 * len(fields):
        example = next(f for f in fields if DECIMAL_COMMA.fullmatch(f))
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
    error: BaseException, name: str, sep: str, encoding: str, codec: Codec | None
) -> MlpcliError:
    """Turn a reading exception into a one-line error that says what to do."""
    import pandas as pd

    if isinstance(error, pd.errors.EmptyDataError):
        return DataError(f"'{name}' is empty; expected a header line and data rows.")
    if isinstance(error, UnicodeDecodeError):
        byte = error.object[error.start : error.start + 1].hex()
        return DataError(
            f"'{name}' is not valid {encoding.upper()} (byte 0x{byte}); "
            f"{_other_encoding('latin-1')}."
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
        isinstance(error, CODEC_ERRORS) or type(error).__name__ == "ZstdError"
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

    With the table cache on (`cache.use`, the CLI's `--cache`/`--no-cache`), a regular file
    read before with the same options comes from its cache entry instead (the same frame, the
    same log messages), and a file read now is stored for next time.
    """
    options: dict[str, Any] = {
        "sep": sep,
        "decimal": decimal,
        "na_values": None if na_values is None else list(na_values),
        "transpose": transpose,
        "encoding": encoding,
        "text_columns": list(text_columns),
        "thousands": thousands,
        "numeric": list(numeric),
        "sheet": sheet,
        "layer": layer,
        "columns": None if columns is None else list(columns),
    }
    root = cache.active_root()
    if root is None or not checksum or str(path) == "-" or not Path(path).is_file():
        table = _parse_table(path, stdin=stdin, checksum=checksum, **options)
        table.frame = canonical(table.frame)
        return table
    name = str(path)
    entry = cache.lookup(root, path, options)
    if entry is not None:
        for level, message in entry.messages:
            log.log(level, message.replace(_SOURCE, name))
        return Table(entry.frame(), name, entry.sha256, entry.sep, entry.id_column)
    with _captured(name) as messages:
        table = _parse_table(path, checksum=checksum, **options)
    table.frame = canonical(table.frame)
    stored = cache.store(
        root, table.frame, options, table.sha256, table.sep, table.id_column, messages
    )
    if stored is not None:
        cache.remember(root, path, table.sha256)
    return table


#: Stands for the file's name in cached log messages (the same bytes may have another name).
_SOURCE = "\x00source\x00"


@contextlib.contextmanager
def _captured(name: str) -> Iterator[list[tuple[int, str]]]:
    """The `mlpcli` log messages (INFO and up, even under --quiet, which the handlers already
    there keep filtering) emitted in the block, the file's name made a placeholder."""
    messages: list[tuple[int, str]] = []
    shown = log.getEffectiveLevel()

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append((record.levelno, record.getMessage().replace(name, _SOURCE)))

    def as_before(record: logging.LogRecord) -> bool:
        return record.levelno >= shown

    others = list(log.handlers)
    for handler in others:
        handler.addFilter(as_before)
    capture, level = Capture(), log.level
    log.addHandler(capture)
    log.setLevel(min(shown, logging.INFO))
    try:
        yield messages
    finally:
        log.setLevel(level)
        log.removeHandler(capture)
        for handler in others:
            handler.removeFilter(as_before)


def _parse_table(
    path: str | Path,
    sep: str | None,
    decimal: str,
    na_values: Sequence[str] | None,
    transpose: bool,
    encoding: str | None,
    *,
    stdin: BinaryIO | None = None,
    checksum: bool = True,
    text_columns: Sequence[str] = (),
    thousands: str | None = None,
    numeric: Sequence[str] = (),
    sheet: str | None = None,
    layer: str | None = None,
    columns: Sequence[str] | None = None,
    in_blocks: bool | None = None,
) -> Table:
    """`read_table` without the cache; `in_blocks=False` parses the text in one pandas call
    (what a failed block parse falls back to)."""
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
    hasher = HashingReader(raw, enabled=checksum)
    used_sep = resolved_sep or ","
    codec = None
    try:
        magic, _ = read_prefix(hasher, 8, whole_line=False)
        codec = codec_for(name, magic)
        stream: Reader = Prefixed(magic, hasher)
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

        parse: dict[str, Any] = {
            "sep": used_sep,
            "decimal": decimal,
            "na_values": list(DEFAULT_NA_VALUES if na_values is None else na_values),
            "keep_default_na": False,
            "encoding": None if encoding == "utf-8" else encoding,
            "engine": "c",
            "compression": None,
            "dtype": dict.fromkeys([*text_columns, *unnamed], "str") or None,
            "thousands": thousands,
        }
        with warnings.catch_warnings():
            # Mixed-type columns are reported by select_columns with their row number.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            splittable = (
                (READ_IN_BLOCKS if in_blocks is None else in_blocks)
                and name != "<stdin>"  # a stream that cannot be read again if blocks fail
                and _bytes_are_ascii(encoding, used_sep)
                and _first_rows_as_wide_as_header(text, used_sep)
            )
            if splittable:
                frame = _parse_blocks(Prefixed(head, stream), parse)
            else:
                frame = pd.read_csv(Prefixed(head, stream), **parse)
        sha256 = hasher.hexdigest() if frame is not None else ""
    except MlpcliError:
        raise
    except Exception as error:
        raise _translate(error, name, used_sep, encoding, codec) from None
    finally:
        hasher.close()
        if name != "<stdin>":
            raw.close()
    if frame is None:  # the blocks could not promise pandas' own frame or message: read whole
        return _parse_table(
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
            in_blocks=False,
        )
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


#: Whether `read_table` parses text in blocks on threads. Off: on 1,000,000 x 100 (862 MB) at
#: load 2-4 blocks took 18.9 s wall and 11.5 CPU s against 13.9 s and 8.7 s for one pandas call
#: (pandas holds the GIL for much of its parsing), for a lower peak (1.17 against 1.76 GB).
READ_IN_BLOCKS = False

#: Bytes of text per block parsed on a worker thread (the first block, parsed first for the
#: column names, is `FIRST_BLOCK_BYTES`): about 20,000 rows of 100 numbers.
BLOCK_BYTES = 16 << 20
FIRST_BLOCK_BYTES = 1 << 20

#: Threads that parse blocks; pandas' C tokenizer and float parser release the GIL.
PARSE_THREADS = 2

#: Blocks parsed or waiting at once: bounds the text and float64 frames held in flight.
BLOCKS_IN_FLIGHT = 2 * PARSE_THREADS


class _Doubt(Exception):
    """The blocks' frames do not combine into the one frame pandas gives for the whole text
    (a column typed differently in two blocks, a parse error whose line number would be the
    block's): the caller reads the file again in one pandas call."""


def _first_rows_as_wide_as_header(text: str, sep: str) -> bool:
    """No R write.table row names (a first data row one field wider than the header), which
    pandas turns into the index only when it sees the header and the row together."""
    rows = csv.reader(io.StringIO(text), delimiter=sep)
    widths = [len(row) for row, _ in zip(rows, range(2), strict=False)]
    return len(widths) < 2 or widths[0] == widths[1]


def _cut(data: bytes, quoted: bool) -> int:
    """Where the last whole record of `data` ends (after a newline outside double quotes;
    `data` starts outside quotes); 0 if no record ends in it."""
    if not quoted:
        return data.rfind(b"\n") + 1
    raw = np.frombuffer(data, dtype=np.uint8)
    inside = np.cumsum(raw == 34) % 2  # parity of the quotes so far: "" flips it twice
    ends = np.flatnonzero((raw == 10) & (inside == 0))
    return int(ends[-1]) + 1 if len(ends) else 0


def _blocks(stream: Reader) -> Iterator[bytes]:
    """Whole records, about `BLOCK_BYTES` at a time (the first `FIRST_BLOCK_BYTES`)."""
    carry = b""
    size = FIRST_BLOCK_BYTES
    while True:
        chunk = stream.read(size)
        if not chunk:
            if carry.strip():
                yield carry
            return
        data = carry + chunk
        end = _cut(data, b'"' in data)
        if end == 0:  # one record longer than a block: read on
            carry = data
            continue
        carry = data[end:]
        yield data[:end]
        size = BLOCK_BYTES


@dataclass
class _Block:
    """One block's columns, compact: numbers as one float32 row-major array."""

    n_rows: int
    dtypes: list[Any]
    numbers: NDArray[np.float32]  # (n_rows, k): the float64 and int64 columns, in order
    ints: dict[int, NDArray[Any]]  # position -> int64 values (exact beyond float32)
    others: dict[int, Any]  # position -> Series (text, booleans)


def _parse_block(data: bytes, parse: dict[str, Any], names: list[str] | None) -> Any:
    import pandas as pd

    source = io.BytesIO(data)
    if names is None:
        return pd.read_csv(source, **parse)
    return pd.read_csv(source, header=None, names=names, **parse)


def _compact(frame: pd.DataFrame) -> _Block:
    dtypes = list(frame.dtypes)
    numeric = [i for i, d in enumerate(dtypes) if d in (np.float64, np.int64)]
    with np.errstate(over="ignore"):
        numbers = np.ascontiguousarray(frame.iloc[:, numeric].to_numpy(dtype=np.float32))
    ints = {i: frame.iloc[:, i].to_numpy() for i in numeric if dtypes[i] == np.int64}
    others = {i: frame.iloc[:, i] for i, d in enumerate(dtypes) if i not in set(numeric)}
    return _Block(len(frame), dtypes, numbers, ints, others)


def _parse_blocks(stream: Reader, parse: dict[str, Any]) -> pd.DataFrame | None:
    """The text parsed in blocks on `PARSE_THREADS` threads, each block's numbers cast to
    float32 as soon as it is parsed (the whole table never exists as float64), then joined
    into the frame one pandas call would give, in `canonical` layout; None when that cannot
    be promised (`_Doubt`), after reading the whole stream."""
    from concurrent.futures import Future, ThreadPoolExecutor

    import pandas as pd

    blocks = _blocks(stream)
    first_text = next(blocks, b"")
    first = pd.read_csv(io.BytesIO(first_text), **parse)
    names = [str(c) for c in first.columns]
    if list(first.columns) != names:
        return first  # pandas made a name that is not text: no blocks to join
    done: list[_Block] = [_compact(first)]
    del first, first_text
    pending: list[Future[Any]] = []
    doubt = False
    with ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="mlpcli-parse") as pool:
        for text in blocks:
            pending.append(pool.submit(lambda t: _compact(_parse_block(t, parse, names)), text))
            while len(pending) >= BLOCKS_IN_FLIGHT or (pending and pending[0].done()):
                try:
                    done.append(pending.pop(0).result())
                except Exception:
                    doubt = True
        for future in pending:
            try:
                done.append(future.result())
            except Exception:
                doubt = True
    if doubt:
        return None
    try:
        return _join(done, pd.Index(names, dtype=_column_dtype(names)))
    except _Doubt:
        return None


def _column_dtype(names: list[str]) -> Any:
    import pandas as pd

    return pd.Index(names).dtype


def _join(done: list[_Block], names: pd.Index) -> pd.DataFrame:
    """The blocks as one frame, typed as pandas types a column read whole: int64 and float64
    blocks give float64 (then float32); any other disagreement is a `_Doubt`."""
    import pandas as pd

    from mlpcli.data.cache import frame_from_blocks

    n_columns = len(names)
    kinds: list[str] = []
    for i in range(n_columns):
        seen = {str(block.dtypes[i]) for block in done}
        if seen <= {"float64", "int64"}:
            kinds.append("float" if "float64" in seen else "int")
        elif len(seen) == 1:
            kinds.append("other")
        else:
            raise _Doubt(f"column {i} is typed {sorted(seen)} in different blocks")
    numeric = [i for i in range(n_columns) if kinds[i] != "other"]
    floats = [i for i in numeric if kinds[i] == "float"]
    take = [numeric.index(i) for i in floats]
    n_rows = sum(block.n_rows for block in done)
    matrix = np.empty((n_rows, len(floats)), dtype=np.float32)
    row = 0
    for block in done:
        whole = len(take) == block.numbers.shape[1]
        matrix[row : row + block.n_rows] = block.numbers if whole else block.numbers[:, take]
        block.numbers = matrix[:0]  # freed as it is copied: the peak is one table, not two
        row += block.n_rows
    parts: list[tuple[Any, NDArray[np.intp]]] = [(matrix.T, np.asarray(floats, np.intp))]
    for i in range(n_columns):
        if kinds[i] == "int":
            values = np.concatenate([block.ints[i] for block in done])
            parts.append((values[None, :], np.asarray([i], np.intp)))
        elif kinds[i] == "other":
            column = pd.concat([block.others[i] for block in done], ignore_index=True)
            values = (
                column.to_numpy()[None, :] if isinstance(column.dtype, np.dtype) else column.array
            )
            parts.append((values, np.asarray([i], np.intp)))
    return frame_from_blocks(parts, pd.RangeIndex(n_rows), names)


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
    hasher = FileHasher(name) if checksum else None
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
                "Column '%s'%s (%s): %d cell(s) that are not numbers read as missing (%s).",
                name,
                where(source),
                "--numeric" if offers("--numeric") else "numeric in training",
                int(lost.sum()),
                token_counts(column[lost]),
            )
        frame[name] = numbers.astype(np.float32)
    return frame


def token_counts(values: pd.Series, limit: int = 5) -> str:
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
    if not len(float64):
        return frame  # astype would rebuild the frame column by column
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
        self._hasher: HashingReader | None = None
        self._raw: BinaryIO | None = None
        self._codec: Codec | None = None
        self._digest: Callable[[], str] = str
        self._numeric = tuple(numeric)
        self._unnamed = False
        self._keep: Callable[[str], bool] | None = None  # columns parsed, then dropped
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
        hasher = self._hasher = HashingReader(raw, enabled=checksum)
        try:
            magic, _ = read_prefix(hasher, 8, whole_line=False)
            self._codec = codec = codec_for(name, magic)
            stream: Reader = Prefixed(magic, hasher)
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
            prefixed = Prefixed(head, stream)
            source: str | Path | Prefixed | _FieldCheck = prefixed
            self._digest = hasher.hexdigest
            wanted = None if usecols is None else {*usecols, *unnamed}
            if wanted is not None and len(cells) - len(wanted) <= len(cells) // PARSE_ALL_SHARE:
                # A few columns to skip: parsing them too and dropping them costs less than
                # counting every line's fields in Python (predict on 300k x 100: 2.2 against
                # 3.3-4.6 CPU s), and pandas then reports extra fields itself, as in train.
                self._keep, wanted = wanted.__contains__, None
            # Only some columns are parsed: pandas then ignores extra fields, so count them.
            check_fields = wanted is not None and _bytes_are_ascii(encoding, self.sep)
            if check_fields:
                source = _FieldCheck(prefixed, name, self.sep, len(cells))
            elif regular and codec is None:
                hasher.close()  # pandas reads the path itself; hash the file alongside
                source, self._digest = path, FileHasher(path).hexdigest if checksum else str
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
                usecols=None if wanted is None else wanted.__contains__,
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
            if self._keep is not None:
                frame = frame[[c for c in frame.columns if self._keep(c)]]
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
        row = first_row(feature_names.isna().to_numpy())
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


def where(source: str) -> str:
    return f" in '{source}'" if source else ""


def first_row(mask: NDArray[np.bool_]) -> int:
    """1-based data row of the first True."""
    return int(np.flatnonzero(mask)[0]) + 1
