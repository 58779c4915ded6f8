"""Errors a user can cause, each mapped to a documented exit code.

The CLI prints `Error: <message>` on stderr and exits with `exit_code`; the message names the
file, column or option, the bad value, and what to do.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

#: Characters a terminal acts on instead of showing: C0 and C1 controls and DEL (an ESC
#: sequence in a column name can retitle the terminal or hide text), and the bidirectional
#: overrides that reorder what is shown. Each is shown as its escape.
_ESCAPES = (
    {c: f"\\x{c:02x}" for c in [*range(32), *range(0x7F, 0xA0)]}
    | {c: f"\\u{c:04x}" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}
    | {10: "\\n", 13: "\\r", 9: "\\t"}
)
_ESCAPES_MULTILINE = {k: v for k, v in _ESCAPES.items() if k not in (9, 10)}


def printable(text: str, multiline: bool = False) -> str:
    """`text` with every control character escaped (`\\x1b`); `multiline` keeps newlines
    and tabs (tables and messages laid out on several lines)."""
    return text.translate(_ESCAPES_MULTILINE if multiline else _ESCAPES)


#: Longer messages keep their start and end: they quote values from files, which may be huge.
MAX_MESSAGE_CHARS = 4000

T = TypeVar("T")


class MlpcliError(Exception):
    """Base class of every error mlpcli reports to a user: always a single line."""

    exit_code = 1

    def __init__(self, message: str = "") -> None:
        text = str(message)
        if len(text) > MAX_MESSAGE_CHARS:  # a 2 GB cell or header never reaches the terminal
            left_out = len(text) - MAX_MESSAGE_CHARS
            text = f"{text[:3000]} ...({left_out:,} characters left out)... {text[-1000:]}"
        super().__init__(printable(text))


class UsageError(MlpcliError):
    """A bad option or option value."""

    exit_code = 2


class DataError(MlpcliError):
    """A problem with an input table: file, columns, values."""

    exit_code = 3


class ModelFileError(MlpcliError):
    """A model file that is missing, corrupt, unsafe or of an unsupported version."""

    exit_code = 4


class DivergenceError(MlpcliError):
    """Training produced non-finite losses or weights."""

    exit_code = 5


class OutputError(MlpcliError):
    """An output file or folder that cannot be written (a bad `--out` value, a full disk)."""

    exit_code = 2


#: Optional extras (pyproject's optional-dependencies) -> the packages they bring, for hints.
EXTRAS: dict[str, str] = {
    "plot": "matplotlib",
    "dask": '"dask[distributed]"',
    "parquet": "pyarrow",
    "excel": "openpyxl",
    "anndata": "h5py",
    "sklearn": "scikit-learn",
    "onnx": "onnx onnxruntime",
}


def install_hint(extra: str) -> str:
    """How to install an optional extra. Never by the name `mlpcli` from the public index: that
    name belongs to an unrelated project, so the hint installs from the checkout (or the bare
    third-party packages, which are the real ones)."""
    return f'pip install ".[{extra}]" in the mlpcli checkout, or pip install {EXTRAS[extra]}'


def choose(kind: str, name: str, registry: Mapping[str, T]) -> T:
    """Look `name` up in a registry, or fail with a message that lists the choices."""
    try:
        return registry[name]
    except KeyError:
        choices = ", ".join(sorted(registry))
        raise UsageError(f"Unknown {kind} '{name}'; choose one of: {choices}.") from None


def warn_or_fail(message: str, strict: bool) -> None:
    """A problem scikit-learn or pandas would go on with: a warning on the `mlpcli` logger,
    or with `--strict` (for pipelines that want every surprise to stop them) a DataError."""
    if strict:
        raise DataError(f"{message} (This is an error because of --strict.)")
    import logging  # here: `--help` starts without it

    logging.getLogger("mlpcli").warning(message.translate(_ESCAPES))  # cells from the data


#: The options of the command being run (set by the CLI), so that a message suggests only an
#: option the user can pass to it; None outside a command (the Python API): any may be named.
_COMMAND_OPTIONS: ContextVar[frozenset[str] | None] = ContextVar("options", default=None)


@contextmanager
def command_options(options: Collection[str] | None) -> Iterator[None]:
    """Messages raised or logged inside suggest only these options (`offers`); None: any."""
    token = _COMMAND_OPTIONS.set(None if options is None else frozenset(options))
    try:
        yield
    finally:
        _COMMAND_OPTIONS.reset(token)


def offers(option: str) -> bool:
    """Whether a message may suggest `option`: the running command has it (or none runs).
    Where it differs by command, a message gives the option or, failing it, what else to do."""
    options = _COMMAND_OPTIONS.get()
    return options is None or option in options
