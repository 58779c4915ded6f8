"""Fixed bounds on what one input may make mlpcli read or allocate, and the helpers that apply
them: a hostile or mistaken file (`--config /dev/zero`, a zip bomb, a 2 GB cell) ends in a
one-line error instead of exhausting the machine's memory.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlpcli.errors import MlpcliError, UsageError

#: Small text inputs: `--config` and `--space` files are a few lines of TOML.
MAX_CONFIG_BYTES = 1 << 20
#: `--group-features` files list column names, perhaps every gene of a genome in a few groups.
MAX_GROUPS_BYTES = 16 << 20
#: A table's header line (and the sample read to sniff the separator).
MAX_HEADER_BYTES = 16 << 20
#: Nesting of JSON or TOML documents we accept; ours nest at most 6 levels.
MAX_DEPTH = 32
#: Characters of a value from a file that an error message shows.
SHOWN_CHARS = 60


def shorten(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` as text of at most about `limit` characters: a 2 GB cell stays out of messages."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}...({len(text):,} characters)"


def read_bounded(
    path: str | Path,
    option: str,
    limit: int,
    error: type[MlpcliError] = UsageError,
    kind: str = "file",
) -> bytes:
    """The bytes of a small input file, reading at most `limit` + 1 of them (a device or FIFO
    such as /dev/zero never ends), or `error` naming the option and the limit."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{option} file '{path}' does not exist.") from None
    except IsADirectoryError:
        raise error(f"{option} '{path}' is a folder; give a {kind}.") from None
    except OSError as exc:
        raise error(f"{option} '{path}': cannot read it ({exc.strerror or exc}).") from None
    if len(data) > limit:
        raise error(
            f"{option} '{path}' is larger than {format_bytes(limit)}, more than such a file "
            "ever needs; give the right file."
        )
    return data


def read_toml(
    path: str | Path, option: str, limit: int, error: type[MlpcliError] = UsageError
) -> dict[str, Any]:
    """A small TOML file read with `read_bounded`; invalid, too large or too deeply nested
    documents are `error`s naming the option."""
    import tomllib  # only when such a file is read: 1.6 ms that every `--help` would pay

    raw = read_bounded(path, option, limit, error, kind="TOML file")
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except RecursionError:
        raise error(f"{option} file '{path}' is nested too deeply to be an mlpcli file.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{option} file '{path}' is not valid TOML: {shorten(exc, 200)}.") from None
    if depth(doc) > MAX_DEPTH:
        raise error(f"{option} file '{path}' is nested more than {MAX_DEPTH} levels deep.")
    return doc


def depth(document: Any) -> int:
    """Nesting depth of parsed JSON/TOML (dicts and lists), computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, level = stack.pop()
        children: Iterable[Any] = ()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children)
    return deepest


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB': sizes in messages."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def physical_memory() -> int:
    """Bytes of RAM on this machine (16 GiB when the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def check_memory(estimate: float, what: str, advice: str) -> None:
    """Refuse (exit 2) a request whose estimated memory exceeds this machine's RAM."""
    available = physical_memory()
    if estimate > available:
        raise UsageError(
            f"{what} would need about {format_bytes(estimate)} of memory, more than this "
            f"machine's {format_bytes(available)}; {advice}"
        )


def return_freed_memory() -> None:
    """Hand memory freed but still held by the allocators back to the system: glibc keeps the
    holes of its heap and pyarrow's pool its freed strings (after `train` read and encoded 1M
    x 100, 53 MB of the 0.63 GB resident). A no-op where neither applies."""
    import sys

    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc (musl, macOS, Windows)
        pass
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def network_bytes(sizes: Iterable[int], itemsize: int, batch_rows: int = 1024) -> int:
    """Rough memory of training a dense network with these layer sizes (inputs, hidden...,
    outputs): parameters, gradients, the best-epoch copy and two optimizer slots (5 copies),
    plus three activation buffers per layer for a batch."""
    widths = [int(w) for w in sizes]
    parameters = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    return itemsize * (5 * parameters + 3 * batch_rows * sum(widths[1:]))
