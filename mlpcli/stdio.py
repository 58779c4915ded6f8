"""The standard streams as every command sees them: a closed descriptor given /dev/null at
start-up, and stdout failures (a full disk, `>&-`) turned into one `OutputError` line. Apart
from outputs.py (which imports the standard library's file, hashing and network modules), so
that `--help` starts without them.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import suppress
from typing import Any

from mlpcli.errors import OutputError


class _StandardOutput(io.RawIOBase):
    """File descriptor 1 with errors a user can read: a full disk or a stdout closed at start
    (`>&-`) becomes an `OutputError`; a closed pipe (`| head`) stays a BrokenPipeError. After
    the first failure further output is dropped, so the exit path cannot fail again."""

    def __init__(self, closed_at_start: bool) -> None:
        super().__init__()
        self.closed_at_start = closed_at_start
        self.failed = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return not self.closed_at_start and os.isatty(1)

    def write(self, data: Any) -> int:
        size = len(memoryview(data))
        if self.failed:
            return size
        if self.closed_at_start:
            self.failed = True
            raise OutputError(
                "standard output is closed (the command ran with >&-); redirect it to a file "
                "or /dev/null."
            )
        try:
            return os.write(1, data)
        except BrokenPipeError:
            self.failed = True
            raise
        except OSError as exc:
            self.failed = True
            raise OutputError(
                f"cannot write to standard output ({exc.strerror or exc}); free space or "
                "redirect it elsewhere."
            ) from None


def _stdout_raw() -> Any:
    return getattr(getattr(sys.stdout, "buffer", None), "raw", None)


def guard_standard_streams() -> None:
    """At start-up: put /dev/null on any closed standard descriptor (so no file we open becomes
    fd 1 and receives stray output), and route stdout through `_StandardOutput`."""
    closed = {}
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            closed[fd] = False
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            closed[fd] = True
    if closed[2] or sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    if closed[0] or sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    old = sys.stdout
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_StandardOutput(closed[1] or old is None)),
        encoding=getattr(old, "encoding", None) or "utf-8",
        errors=getattr(old, "errors", None) or "strict",
        line_buffering=bool(getattr(old, "line_buffering", False)),
    )


def drop_stdout() -> None:
    """After stdout failed (a closed pipe): send what is still buffered to /dev/null so the
    interpreter's final flush cannot fail too."""
    raw = _stdout_raw()
    if isinstance(raw, _StandardOutput):
        raw.failed = True
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    with suppress(OSError, OutputError):
        sys.stdout.flush()
