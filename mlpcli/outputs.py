"""Atomic output files: write to a temporary file in the same folder, then rename.

A failure or an interruption leaves no partial file behind, and Make or Snakemake never see a
file that merely looks complete.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlpcli.errors import OutputError

STDOUT = "-"


def check_writable(path: str | Path, option: str) -> Path:
    """Fail early (before any training) when `path` cannot be written."""
    if str(path) == STDOUT:
        raise OutputError(f"{option} - (standard output) is not supported here; give a file name.")
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise OutputError(f"{option} '{path}' is a folder; give a file name.")
    if not folder.is_dir():
        raise OutputError(f"{option} '{path}': folder '{folder}' does not exist; create it first.")
    # Try for real: permission bits say nothing for root, read-only mounts or /proc.
    try:
        with tempfile.NamedTemporaryFile(prefix=f".{path.name}.", suffix=".check", dir=folder):
            pass
    except OSError as exc:
        raise OutputError(
            f"{option} '{path}': folder '{folder}' is not writable ({exc.strerror or exc})."
        ) from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, option: str = "--out") -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only on success."""
    path = check_writable(path, option)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(
            f"{option} '{path}': cannot create a file there ({exc.strerror})."
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"{option} '{path}': no space left on the device.") from None
        raise OutputError(f"{option} '{path}': cannot write it ({exc.strerror or exc}).") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str, option: str = "--out") -> None:
    """Write a whole text file atomically."""
    with atomic_path(path, option) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, for provenance."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
