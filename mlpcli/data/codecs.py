"""Compressed input: each codec's magic bytes and decompressing stream, and the readers
that hash the bytes on disk while they pass (a table is read once)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import queue
import threading
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

from mlpcli.errors import (
    DataError,
    install_hint,
)
from mlpcli.limits import MAX_HEADER_BYTES

if TYPE_CHECKING:
    pass


class Reader(Protocol):
    """Anything with a binary `read`: files, stdin, decompressors, our wrappers."""

    def read(self, size: int = -1, /) -> bytes: ...


class HashingReader(io.RawIOBase):
    """Pass reads through while a background thread hashes the same bytes.

    The file is read once; hashlib releases the GIL, so hashing overlaps the parsing.
    """

    def __init__(self, raw: Reader, enabled: bool = True) -> None:
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


class FileHasher:
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


class Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to sniff them), served again first."""

    def __init__(self, prefix: bytes, stream: Reader) -> None:
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


def read_prefix(
    stream: Reader, size: int, whole_line: bool = True, limit: int = MAX_HEADER_BYTES
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


def _open_zstd(raw: Reader, name: str) -> Reader:
    try:
        import zstandard
    except ImportError:
        raise DataError(
            f"'{name}' is zstd-compressed and reading it needs the zstandard package: "
            "pip install zstandard"
        ) from None
    stream = cast(BinaryIO, raw)  # any object with read() serves; zstandard's stub says IO
    reader: Reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    return reader


def _open_zip(raw: Reader, name: str) -> Reader:
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
class Codec:
    """A compression format: its magic bytes and how to open a decompressing stream."""

    name: str
    magic: bytes
    open: Callable[[Reader, str], Reader]


# The stdlib decompressors only ever call `read` on the stream; their stubs want a real file.
def _open_gzip(raw: Reader, name: str) -> Reader:
    return gzip.GzipFile(fileobj=cast(BinaryIO, raw), mode="rb")


def _open_bz2(raw: Reader, name: str) -> Reader:
    return bz2.BZ2File(cast(BinaryIO, raw), mode="rb")


def _open_xz(raw: Reader, name: str) -> Reader:
    return lzma.LZMAFile(cast(BinaryIO, raw), mode="rb")


CODECS: dict[str, Codec] = {
    ".gz": Codec("gzip", b"\x1f\x8b", _open_gzip),
    ".bz2": Codec("bzip2", b"BZh", _open_bz2),
    ".xz": Codec("xz", b"\xfd7zXZ\x00", _open_xz),
    ".zip": Codec("zip", b"PK\x03\x04", _open_zip),
    ".zst": Codec("zstd", b"\x28\xb5\x2f\xfd", _open_zstd),
}


#: Exceptions raised by corrupt or truncated compressed input (bz2 and gzip raise OSError).
CODEC_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
)


#: Text table extension -> field separator: the one map every reader and writer uses (issue
#: 13). `.txt` is written with tabs but sniffed when read: text files come with any delimiter.
TABLE_SEPARATORS: dict[str, str] = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
SNIFFED_EXTENSIONS = frozenset({".txt"})


def table_extension(name: str | Path) -> str:
    """The table's extension under a compression one: 'x.tsv.gz' -> '.tsv', 'x.csv' -> '.csv'."""
    path = Path(name)
    if path.suffix.lower() in CODECS:
        path = Path(path.stem)
    return path.suffix.lower()


def extension_separator(name: str | Path) -> str | None:
    """The separator a table's name implies when read, or None (sniff it)."""
    extension = table_extension(name)
    return None if extension in SNIFFED_EXTENSIONS else TABLE_SEPARATORS.get(extension)


def codec_for(name: str, head: bytes) -> Codec | None:
    """Compression from the outer extension, else from the magic bytes (stdin, odd names)."""
    codec = CODECS.get(Path(name).suffix.lower())
    if codec is not None:
        return codec
    return next((c for c in CODECS.values() if head.startswith(c.magic)), None)
