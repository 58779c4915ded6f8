"""`mlpcli inspect MODEL` (and `inspect MODEL --json`) without importing NumPy, Typer or rich:
the text the command printed for the same model file, kept in the user cache folder.

Rendering a description reads and checks every array of the file and imports about fifteen
modules that need NumPy, then Typer and rich: about 0.5 s, for a text that depends only on
the file's bytes, the argument naming it, the code (every mlpcli module, Typer, rich, NumPy,
the interpreter and the locale: `helpcache`'s fingerprint), the terminal (whether each
standard stream is one, its size, the variables rich reads) and which exporters are installed
(the "export" row). So the first `inspect` of a model file renders as before and keeps its
text under a key made of all of these (the file's SHA-256 included); a later one with the same
key prints the kept text. A changed file, or a file renamed in place, hashes differently and
renders afresh. A kept file that cannot be read, is too large, is for another key, or whose
text fails its digest is ignored and rewritten, never trusted. Only the exact command lines
`inspect MODEL`, `inspect MODEL --json` and `inspect --json MODEL` take this path; the
rendering path keeps every other form's text too (`--rows`), for nothing but itself.

Kept files: `<cache folder>/inspect-v1/<key>.json` (`cachedir.default_folder()`: the table
cache's folder, `$MLPCLI_CACHE_DIR` moves both); the `KEEP` newest are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence

from mlpcli import cachedir
from mlpcli.cli import helpcache

FOLDER = "inspect-v1"
#: Kept texts at most; the oldest go first.
KEEP = 64
#: A kept text above this is neither written nor read (a 20,000-gene model's --json is ~3 MB).
MAX_BYTES = 32 << 20
#: `inspect`'s own default of --rows: the only value the fast path answers for.
DEFAULT_ROWS = 20
#: Environment variables that change what rich draws (width, colour, terminal detection).
TERMINAL_VARIABLES = (
    "COLUMNS",
    "LINES",
    "NO_COLOR",
    "FORCE_COLOR",
    "TERM",
    "COLORTERM",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "JUPYTER_COLUMNS",
    "JUPYTER_LINES",
    "PYTHONIOENCODING",
    "PYTHONUTF8",
)


def request(argv: Sequence[str]) -> tuple[str, bool] | None:
    """(MODEL, --json) for the exact command lines the kept text answers, else None."""
    if not argv or argv[0] != "inspect" or len(argv) not in (2, 3):
        return None
    rest = list(argv[1:])
    json_out = "--json" in rest
    if json_out:
        rest.remove("--json")
    if len(rest) != 1 or rest[0].startswith("-"):
        return None
    return rest[0], json_out


def _file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:  # the rendering path reports it
        return None


def _terminal() -> list[str]:
    """What rich reads of the terminal: each standard stream's tty-ness and size, its encoding,
    and the variables that override them."""
    found = [f"{name}={os.environ.get(name)}" for name in TERMINAL_VARIABLES]
    for fd in (0, 1, 2):
        try:
            tty = os.isatty(fd)
            size = os.get_terminal_size(fd) if tty else None
        except OSError:
            tty, size = False, None
        found.append(f"fd{fd}:{tty}:{size}")
    stream = sys.stdout
    found.append(f"stdout:{getattr(stream, 'encoding', None)}:{getattr(stream, 'errors', None)}")
    return found


def key(model: str, json_out: bool, rows: int) -> str | None:
    """The key of `inspect MODEL [--json] --rows ROWS` as this process would print it (None when
    the file cannot be read: the rendering path says why)."""
    digest = _file_sha256(model)
    if digest is None:
        return None
    parts = [
        f"format {FOLDER}",
        helpcache.fingerprint(),  # mlpcli, Typer, the interpreter, the locale
        *helpcache.package_stamp("rich"),
        *helpcache.package_stamp("numpy"),
        json.dumps([model, json_out, rows, digest]),
        *_terminal(),
    ]
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _path(name: str) -> str:
    return os.path.join(cachedir.default_folder(), FOLDER, f"{name}.json")


def _modules_found(names: Mapping[str, bool]) -> bool:
    """Each module the text depends on (the exporters) is installed or not, as when kept."""
    import importlib.util

    try:
        return all((importlib.util.find_spec(n) is not None) == bool(f) for n, f in names.items())
    except (ImportError, ValueError):
        return False


def kept(model: str, json_out: bool) -> str | None:
    """The text kept for `inspect MODEL [--json]` as run now, or None (render it)."""
    name = key(model, json_out, DEFAULT_ROWS)
    if name is None:
        return None
    try:
        with open(_path(name), "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        record = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != name:
        return None
    text, modules = record.get("text"), record.get("modules")
    if not isinstance(text, str) or not isinstance(modules, dict):
        return None
    data = text.encode("utf-8", "surrogateescape")
    if hashlib.sha256(data).hexdigest() != record.get("text_sha256"):
        return None
    return text if _modules_found(modules) else None


def keep(
    name: str | None,
    model: str,
    json_out: bool,
    rows: int,
    text: str,
    modules: Mapping[str, bool],
) -> None:
    """Keep `text`, rendered for key `name` (taken before rendering), unless the file or the
    terminal changed meanwhile; silently not at all where the folder cannot be written."""
    data = text.encode("utf-8", "surrogateescape")
    if name is None or len(data) > MAX_BYTES or key(model, json_out, rows) != name:
        return
    path = _path(name)
    record = {
        "key": name,
        "modules": dict(modules),
        "text": text,
        "text_sha256": hashlib.sha256(data).hexdigest(),
    }
    helpcache.write_kept(path, record, KEEP, lambda file: file.endswith(".json"))


def exporter_modules() -> dict[str, bool]:
    """Each exporter's module -> installed: the "export" row of the description says so."""
    import importlib.util

    from mlpcli import export

    return {
        f.module: importlib.util.find_spec(f.module) is not None for f in export.FORMATS.values()
    }
