"""`mlpcli --help` and `mlpcli COMMAND --help` without importing Typer: the help documents
(`helptext.describe`) kept next to the bytecode, in `mlpcli/cli/__pycache__/`.

Importing Typer (and its Click) and building a command's options costs more than the whole
0.15 s start-up budget on a loaded machine, for a text that changes only when mlpcli, Typer,
the interpreter or the locale does. So the first `--help` of each command builds its document
through Typer as before and keeps it; later ones read it back. The file's name is a
fingerprint of everything the help is made from: every module of mlpcli and Typer's own
(path, size and modification time, as Python checks its .pyc files), the interpreter's
version and the locale; a change to any of them picks another file (the oldest are removed).
A file that cannot be read, is too large or does not hold a document that draws is ignored
and rebuilt, never trusted. Nothing is written where Python writes no bytecode either
(`PYTHONDONTWRITEBYTECODE`, `-B`) or where the folder is not writable.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

HELP_FLAGS = ("--help", "-h")
#: A help file above this is not read (train's document is about 40 KB).
MAX_BYTES = 4 << 20
PREFIX = "mlpcli-help-"
#: Help files kept at most (one per fingerprint); the oldest go first.
KEEP = 8
#: os.path rather than pathlib here: importing pathlib would be a fifth of `--help`'s imports.
FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def request(argv: Sequence[str], commands: Collection[str]) -> str | None:
    """The command whose help `argv` asks for: NAME for `mlpcli NAME --help`, "" for `mlpcli
    --help`, None for any other command line (Click parses those, help included:
    `mlpcli train --out x --help`)."""
    if len(argv) == 1 and argv[0] in HELP_FLAGS:
        return ""
    if len(argv) == 2 and argv[0] in commands and argv[1] in HELP_FLAGS:
        return argv[0]
    return None


def _sources() -> list[str]:
    """Path, size and modification time of every module the help is made from."""
    found = []
    folders = [_PACKAGE]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                    folders.append(entry.path)
                elif entry.name.endswith(".py"):
                    info = entry.stat()
                    found.append(f"{entry.path}:{info.st_size}:{info.st_mtime_ns}")
    found.extend(package_stamp("typer"))  # Typer's own version
    return sorted(found)


def package_stamp(name: str) -> list[str]:
    """Path, size and modification time of package `name`'s `__init__.py`, found on `sys.path`
    as the import system finds it (none when it is not installed)."""
    for folder in sys.path:
        init = os.path.join(folder or ".", name, "__init__.py")
        try:
            info = os.stat(init)
        except OSError:
            continue
        return [f"{init}:{info.st_size}:{info.st_mtime_ns}"]
    return []


def fingerprint() -> str:
    """The name of the help file for this mlpcli, Typer, interpreter and locale."""
    locale = [os.environ.get(k, "") for k in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")]
    text = "\n".join([sys.version, *locale, *_sources()]).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(text):08x}{zlib.adler32(text):08x}"


def _path(folder: str | os.PathLike[str] | None) -> str:
    return os.path.join(folder or FOLDER, f"{PREFIX}{fingerprint()}.json")


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        docs = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError):
        return {}
    return docs if isinstance(docs, dict) else {}


def _write(path: str, docs: dict[str, Any]) -> None:
    """Atomically, keeping the `KEEP` newest files (of other fingerprints: an edited checkout,
    another locale); silently not at all where Python writes no bytecode or cannot write."""
    if sys.dont_write_bytecode:
        return
    write_kept(path, docs, KEEP, lambda name: name.startswith(PREFIX))


def write_kept(path: str, record: dict[str, Any], keep: int, ours: Callable[[str], bool]) -> None:
    """Write `record` as JSON to `path` atomically, then remove all but the `keep` newest files
    of its folder whose names `ours` accepts (the one just written always stays); a folder that
    cannot be written leaves nothing behind, silently: a kept file only saves time."""
    folder, name = os.path.split(path)
    staged = os.path.join(folder, f".{name}.{os.getpid()}")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(staged, "w", encoding="utf-8", errors="surrogateescape") as fh:
            json.dump(record, fh)
        os.replace(staged, path)
        others = [os.path.join(folder, f) for f in os.listdir(folder) if ours(f)]
        others = sorted((f for f in others if f != path), key=os.path.getmtime)
        for old in others[: max(len(others) - (keep - 1), 0)]:
            os.unlink(old)
    except OSError:
        if os.path.exists(staged):
            os.unlink(staged)


def help_text(
    name: str,
    build: Callable[[str], dict[str, Any]],
    draw: Callable[[dict[str, Any]], str],
    folder: str | os.PathLike[str] | None = None,
) -> str:
    """The help of `name` ("" for the root) drawn from the kept document, else from
    `build(name)` (through Typer), which is then kept."""
    path = _path(folder)
    docs = _read(path)
    if name in docs:
        try:
            return draw(docs[name])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            pass  # not a document this version draws: rebuilt below
    docs[name] = build(name)
    text = draw(docs[name])
    _write(path, docs)
    return text
