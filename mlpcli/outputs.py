"""Output files: no output ever replaces an input, and a run writes all its outputs or none.

- `check_paths` runs before any command reads its data: an output that resolves to an input
  (same real path, or the same device and inode: a hard link) or to another output is refused.
- `OutputStage` collects every file a run writes as temporaries beside their targets and renames
  them all at the end; a failure or an interruption removes them all. A single write outside a
  stage (`atomic_path`) is its own stage.
- Overwritten files keep their mode. Devices and FIFOs (`/dev/null`, `/dev/stdout`, a named
  pipe) are written in place at commit time, never replaced by a regular file.
- `provenance` is the record every JSON output carries: command, versions, seed, inputs.
- Temporaries are named `.<name>.mlpcli-<host>-<pid>-<random>.tmp`; a later run writing the same
  target removes the ones whose process is dead (a kill -9), never a running process's.
"""

from __future__ import annotations

import contextvars
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpcli.errors import OutputError
from mlpcli.stdio import _StandardOutput, _stdout_raw

STDOUT = "-"

#: Temporaries of another host are only removed once this old (their process cannot be asked).
FOREIGN_STALE_SECONDS = 24 * 3600
_TAG = ".mlpcli-"
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"
_TEMP = re.compile(r"\.mlpcli-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]+\.tmp\Z")


# --------------------------------------------------------------------------- one path check
@dataclass(frozen=True)
class _Identity:
    """What a path names: its real path and, for an existing regular file, (device, inode)."""

    real: str
    inode: tuple[int, int] | None
    shareable: bool  # a device or FIFO: several outputs may name /dev/null


def _identify(path: str) -> _Identity:
    real = os.path.realpath(path)
    try:
        info = os.stat(path)
    except OSError:
        return _Identity(real, None, False)
    if stat.S_ISREG(info.st_mode):
        return _Identity(real, (info.st_dev, info.st_ino), False)
    return _Identity(real, None, not stat.S_ISDIR(info.st_mode))


def _same(a: _Identity, b: _Identity) -> bool:
    if a.shareable or b.shareable:
        return False
    return a.real == b.real or (a.inode is not None and a.inode == b.inode)


def _paths(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str | os.PathLike) else [str(v) for v in value]


def check_paths(
    inputs: Mapping[str, str | None],
    outputs: Mapping[str, str | Sequence[str] | None],
    may_share: Iterable[tuple[str, str]] = (),
    stdout: Iterable[str] = ("--json",),
) -> None:
    """Refuse, before anything is read, an output that is an input or another output.

    `inputs` and `outputs` map an option name (`DATA`, `--out`) to a path, a list of paths (the
    files `--plots DIR` draws) or None; `-` is stdin or stdout. `may_share` lists (output, input)
    pairs that may name one file because the input is read in full before the first write
    (`train --resume ckpt.npz --checkpoint ckpt.npz`); `stdout` the outputs that may be `-`.
    Each output is also checked writable.
    """
    shared = set(may_share)
    to_terminal = set(stdout)
    seen_inputs = [
        (option, path, _identify(path))
        for option, path in inputs.items()
        if path is not None and path != STDOUT
    ]
    seen_outputs: list[tuple[str, str, _Identity]] = []
    to_stdout: str | None = None
    for option, value in outputs.items():
        for path in _paths(value):
            if path == STDOUT and option not in to_terminal:
                check_writable(path, option)  # says that stdout is not supported here
            if path == STDOUT:
                shown = option if option.startswith("--json") else f"{option} -"
                if to_stdout is not None:
                    raise OutputError(
                        f"{to_stdout} and {shown} both write to stdout; give {option} a file name."
                    )
                raw = _stdout_raw()
                if isinstance(raw, _StandardOutput) and raw.closed_at_start:
                    raise OutputError(
                        f"{shown} writes to standard output, which is closed (>&-); redirect "
                        "it to a file."
                    )
                to_stdout = shown
                continue
            identity = _identify(path)
            for other, other_path, known in seen_inputs:
                if _same(identity, known) and (option, other) not in shared:
                    raise OutputError(
                        f"{option} '{path}' is the same file as the input {other} "
                        f"'{other_path}'; writing it would destroy that input. Give {option} "
                        "another file name."
                    )
            for other, other_path, known in seen_outputs:
                if _same(identity, known):
                    raise OutputError(
                        f"{option} '{path}' and {other} '{other_path}' are the same file; "
                        f"give each output its own name."
                    )
            check_writable(path, option)
            seen_outputs.append((option, path, identity))


def check_writable(path: str | Path, option: str) -> Path:
    """Fail early (before any training) when `path` cannot be written."""
    if str(path) == STDOUT:
        raise OutputError(f"{option} - (standard output) is not supported here; give a file name.")
    target = _Target.of(path, option)
    if target.in_place:
        if not os.access(target.path, os.W_OK):
            raise OutputError(f"{option} '{path}' is not writable (permission denied).")
        return Path(path)
    # Try for real: permission bits say nothing for root, read-only mounts or /proc.
    try:
        probe = target.new_temp()
    except OSError as exc:
        raise OutputError(
            f"{option} '{path}': folder '{target.folder}' is not writable ({exc.strerror or exc})."
        ) from None
    probe.unlink(missing_ok=True)
    return Path(path)


# --------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class _Target:
    """Where an output really goes: a regular file (written beside, then renamed onto; through
    symlinks, which stay) or a device/FIFO (written in place at commit)."""

    path: Path  # the file to replace, or the device/FIFO to write into
    option: str
    in_place: bool
    mode: int | None  # the existing file's permission bits, kept
    owner: tuple[int, int] | None

    @classmethod
    def of(cls, path: str | Path, option: str) -> _Target:
        shown = Path(path)
        try:
            info = os.stat(shown)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise OutputError(
                f"{option} '{shown}': cannot use it ({exc.strerror or exc})."
            ) from None
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise OutputError(f"{option} '{shown}' is a folder; give a file name.")
        # /dev/stdout, /proc/self/fd/1: magic links; write through them, never rename onto them.
        magic = str(shown).startswith(("/dev/", "/proc/"))
        if info is not None and (not stat.S_ISREG(info.st_mode) or magic):
            return cls(shown, option, True, None, None)
        real = Path(os.path.realpath(shown))
        if not real.parent.is_dir():
            raise OutputError(
                f"{option} '{shown}': folder '{shown.parent}' does not exist; create it first."
            )
        if info is None:
            return cls(real, option, False, None, None)
        return cls(real, option, False, stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid))

    @property
    def folder(self) -> Path:
        return Path(tempfile.gettempdir()) if self.in_place else self.path.parent

    def new_temp(self) -> Path:
        """An empty temporary with a recognisable name; stale ones of this target are removed."""
        prefix = f".{self.path.name[:80]}{_TAG}"
        remove_stale_temps(self.folder, prefix)
        while True:
            name = f"{prefix}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            os.close(fd)
            return self.folder / name

    def install(self, tmp: Path) -> None:
        """Put the finished temporary in place."""
        if self.in_place:
            with open(tmp, "rb") as source, open(self.path, "wb") as sink:
                shutil.copyfileobj(source, sink)
            tmp.unlink()
            return
        os.chmod(tmp, 0o666 & ~_umask() if self.mode is None else self.mode)
        if self.owner is not None:
            with suppress(OSError):  # not ours to give away; the content still lands
                os.chown(tmp, *self.owner)
        os.replace(tmp, self.path)


def remove_stale_temps(folder: Path, prefix: str) -> list[Path]:
    """Remove `prefix`* temporaries left by dead processes (kill -9, power loss); returns them.

    On this host a temporary is stale when its process no longer exists; from another host
    (a shared file system) when it is older than FOREIGN_STALE_SECONDS.
    """
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP.search(entry.name[len(prefix) - len(_TAG) :])
        if match is None:
            continue
        try:
            if match["host"] == _HOST:
                stale = not _alive(int(match["pid"]))
            else:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > FOREIGN_STALE_SECONDS
            if stale and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # another run cleaned it first, or it is not ours to remove
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    except OSError:
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- the stage
def _os_error(option: str, path: Path | str, exc: OSError) -> OutputError:
    if exc.errno == errno.ENOSPC:
        return OutputError(f"{option} '{path}': no space left on the device.")
    return OutputError(f"{option} '{path}': cannot write it ({exc.strerror or exc}).")


class OutputStage:
    """Every file of one run, written to temporaries and committed together at the end."""

    def __init__(self) -> None:
        self._staged: dict[Path, tuple[_Target, Path, str]] = {}

    @contextmanager
    def path(self, path: str | Path, option: str = "--out") -> Iterator[Path]:
        """Yield a temporary to write `path`'s content to; it joins the stage if the block ends
        without error, and is removed otherwise."""
        target = _Target.of(path, option)
        try:
            tmp = target.new_temp()
        except OSError as exc:
            raise OutputError(
                f"{option} '{path}': cannot create a file there ({exc.strerror or exc})."
            ) from None
        try:
            yield tmp
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _os_error(option, path, exc) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        earlier = self._staged.pop(target.path, None)
        if earlier is not None:
            earlier[1].unlink(missing_ok=True)
        self._staged[target.path] = (target, tmp, str(path))

    def write_text(self, path: str | Path, text: str, option: str = "--out") -> None:
        with self.path(path, option) as tmp:
            tmp.write_text(text, encoding="utf-8")

    def commit(self) -> list[str]:
        """Put every staged file in place (signals wait until the last one is in); returns the
        paths as given."""
        done = []
        with _signals_deferred():
            try:
                while self._staged:
                    key = next(iter(self._staged))
                    target, tmp, shown = self._staged[key]
                    try:
                        target.install(tmp)
                    except OSError as exc:
                        raise _os_error(target.option, shown, exc) from None
                    del self._staged[key]
                    done.append(shown)
            finally:
                self.discard()
        return done

    def discard(self) -> None:
        """Remove every staged temporary: the run writes nothing."""
        for _, tmp, _ in self._staged.values():
            tmp.unlink(missing_ok=True)
        self._staged.clear()


_CURRENT: contextvars.ContextVar[OutputStage | None] = contextvars.ContextVar(
    "mlpcli_output_stage", default=None
)


@contextmanager
def staged_outputs() -> Iterator[OutputStage]:
    """Make every `atomic_path`/`write_text` in the block join one stage; commit it when the
    block ends normally, discard it otherwise. The CLI runs each command inside one."""
    stage = OutputStage()
    token = _CURRENT.set(stage)
    try:
        yield stage
    except BaseException:
        stage.discard()
        raise
    finally:
        _CURRENT.reset(token)
    stage.commit()


def commit_staged() -> list[str]:
    """Commit the current stage now (e.g. the model saved on an interrupt, before exiting)."""
    stage = _CURRENT.get()
    return [] if stage is None else stage.commit()


@contextmanager
def atomic_path(path: str | Path, option: str = "--out", *, now: bool = False) -> Iterator[Path]:
    """Yield a temporary path for `path`: joined to the current stage, or (outside a stage, or
    with `now`, as checkpoints are) put in place as soon as the block ends without error."""
    stage = _CURRENT.get()
    if stage is not None and not now:
        with stage.path(path, option) as tmp:
            yield tmp
        return
    own = OutputStage()
    try:
        with own.path(path, option) as tmp:
            yield tmp
    except BaseException:
        own.discard()
        raise
    own.commit()


def write_text(path: str | Path, text: str, option: str = "--out") -> None:
    """Write a whole text file (staged, or atomically on its own)."""
    with atomic_path(path, option) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM during the final renames, then deliver them: a stage is never
    half committed. (Only the main thread may touch handlers; elsewhere nothing changes.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in pending[:1]:
            signal.raise_signal(signum)


#: Bytes a `WriteBackFile` writes between write-backs.
WRITE_BACK_BYTES = 16 << 20


class WriteBackFile:
    """A large binary file written front to back that writes its pages back to disk and drops
    them from the page cache every `WRITE_BACK_BYTES`: gigabytes of dirty page cache count
    against a memory cgroup, and cgroup v1 kills the process instead of waiting for write-back.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        self._unflushed = 0

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self._unflushed += memoryview(data).nbytes
        if self._unflushed >= WRITE_BACK_BYTES:
            self.write_back()

    def write_back(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        self._unflushed = 0

    def close(self) -> None:
        """Write back what is left and close (a no-op once closed)."""
        if not self._file.closed:
            self.write_back()
            self._file.close()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, for provenance."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def provenance(
    command: list[str] | None, inputs: dict[str, str], seed: int | None
) -> dict[str, Any]:
    """Where a result came from: for every JSON output (command, versions, seed, inputs).
    NumPy is imported here, not above: `--help` imports this module."""
    import platform

    import numpy as np

    from mlpcli import __version__

    return {
        "command": command if command is not None else list(sys.argv),
        "mlpcli_version": __version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "seed": seed,
        "inputs": [{"path": p, "sha256": h} for p, h in inputs.items()],
    }


def to_json(document: Mapping[str, Any]) -> str:
    """The stable JSON text of a result: fixed key order, 2-space indent, no NaN."""
    return json.dumps(document, indent=2, allow_nan=False) + "\n"
