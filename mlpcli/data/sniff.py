"""What a delimited text file is before it is parsed: its head, its separator (given or
sniffed), its encoding, a decimal comma, the header's shape, and pandas' parse errors said in
our words (`translate`); also `where` and `first_row` for messages that name a data row.

Shared by `read` (a whole table) and `chunks` (a table chunk by chunk). pandas is imported
inside the functions: `mlpcli --help` must not pay its 0.4 s import.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from mlpcli.data.codecs import (
    CODEC_ERRORS,
    Codec,
    Reader,
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
from mlpcli.limits import MAX_HEADER_BYTES, SHOWN_CHARS, format_bytes

if TYPE_CHECKING:
    pass

log = logging.getLogger("mlpcli")


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


class FieldCheck(io.RawIOBase):
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
            f"{self._n_fields}; check the separator (now {sep_name(chr(self._sep))}, change "
            "it with --sep) and quoting."
        )


def read_head(stream: Reader, name: str) -> tuple[bytes, bool]:
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


def sep_name(sep: str) -> str:
    """How to type a separator on a shell command line."""
    names = {"\t": "tab", r"\s+": "space"}
    return names.get(sep, f"'{sep}'")


def resolve_sep(sep: str) -> str:
    if len(sep) == 1:
        return SEPARATORS.get(sep, sep)
    return str(choose("separator", sep.lower(), SEPARATORS))


def sniff_sep(name: str, text: str) -> str:
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


def header_cells(text: str, sep: str) -> list[str]:
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
        resolve_sep(sep)
    if not isinstance(decimal, str) or len(decimal) != 1:
        raise UsageError(f"--decimal must be one character, got '{decimal}'.")
    normalise_encoding(encoding)


def normalise_encoding(encoding: str | None) -> str:
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


def bytes_are_ascii(encoding: str, sep: str) -> bool:
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


def decode_sample(name: str, head: bytes, encoding: str, complete: bool) -> str:
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


def warn_decimal_comma(name: str, text: str, sep: str, decimal: str) -> None:
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


def check_header(name: str, cells: list[str], text: str, sep: str) -> None:
    """One column under `sep` but several under another delimiter: the separator is wrong."""
    if len(cells) == 1:
        for other in _ALTERNATIVES:
            n = _consistent_fields(text, other) if other != sep else 0
            if n > 1:
                raise DataError(
                    f"'{name}' has a single column when split on {sep_name(sep)} but its "
                    f"header has {n} fields separated by {sep_name(other)}; "
                    f"pass --sep {sep_name(other)}."
                )
    duplicated = [cell for cell, count in Counter(cells).items() if count > 1]
    if duplicated:
        names = ", ".join(f"'{cell}'" for cell in duplicated)
        raise DataError(f"'{name}' has duplicated column names: {names}; rename them.")


_FIELDS_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def translate(
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
                f"check the separator (now {sep_name(sep)}, change it with --sep) and quoting."
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


def where(source: str) -> str:
    return f" in '{source}'" if source else ""


def first_row(mask: NDArray[np.bool_]) -> int:
    """1-based data row of the first True."""
    return int(np.flatnonzero(mask)[0]) + 1
