"""Every reusable option of the command line, declared once.

Two kinds: the settings options, generated from the option fields in `config.py` so `train`,
`cv` and `tune` share one definition of each; and the hand-written options several commands take
(DATA and MODEL, `--config`, the reading options, `--n-jobs`, `--json`, `--quiet`, `--out`...).
A command module imports these and declares only what is its own; `tests/test_cli_docs.py`
fails if a flag is declared twice. An option whose help differs by command (`--out`, `--seed`)
has one factory here that takes the help text. No logic beyond the translation; no numpy here.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer

from mlpcli.config import SECTIONS
from mlpcli.option_parsers import flag

#: Help panels, in the order a person reads them.
OUTPUT = "Output"
READING = "Reading"
PARALLEL = "Parallel"
CONFIGURATION = "Configuration"


def completion(module: str, registry: str) -> Callable[[], list[str]]:
    """Shell completion from a library registry, imported only when TAB is pressed (so
    `--help` stays free of numpy)."""

    def complete() -> list[str]:
        import importlib

        return list(getattr(importlib.import_module(module), registry))

    return complete


# --------------------------------------------------------------------------- arguments
def data_argument(help_text: str) -> Any:
    """The DATA argument; each command says what the table must hold."""
    return typer.Argument(help=help_text, show_default=False, metavar="DATA")


TrainingData = Annotated[
    str, data_argument("Table to learn from (CSV/TSV, maybe compressed; - for stdin).")
]
ModelArg = Annotated[
    str, typer.Argument(help="Model file written by mlpcli train.", metavar="MODEL")
]


# --------------------------------------------------------------------------- output
def out_option(help_text: str, **extra: Any) -> Any:
    """`--out/-o`: what the command writes there is its own help."""
    extra.setdefault("show_default", False)
    extra.setdefault("metavar", "FILE")
    return typer.Option("--out", "-o", help=help_text, rich_help_panel=OUTPUT, **extra)


#: Flags show no metavar (`common.plain_metavars`).
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only warnings and errors.")]
JsonFlag = Annotated[
    bool,
    typer.Option("--json", help="Print the result as JSON on stdout.", rich_help_panel=OUTPUT),
]
LOG_FORMATS = ("text", "jsonl")
#: The metavar of a value option declared without one, by its type; a text value must declare
#: its own (FILE, NAME, ...), which tests/test_cli_docs.py checks for every command.
TYPE_METAVARS = {int: "N", float: "NUMBER"}
LogFormat = Annotated[
    str,
    typer.Option(
        "--log-format",
        help="Progress on stderr: text, or jsonl (one JSON per line).",
        metavar="NAME",
        autocompletion=lambda: list(LOG_FORMATS),
    ),
]
LogEvery = Annotated[
    int,
    typer.Option("--log-every", min=1, help="Plain-text progress every N epochs (non-terminals)."),
]


# --------------------------------------------------------------------------- settings
ConfigFile = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="TOML file supplying any option; flags override it.",
        metavar="FILE",
        rich_help_panel=CONFIGURATION,
    ),
]


def seed_option(help_text: str, **extra: Any) -> Any:
    """`--seed` of the commands outside the settings (`split`, `explain`)."""
    return typer.Option("--seed", help=help_text, **extra)


def repeats_option(help_text: str, **extra: Any) -> Any:
    """`--repeats`: of the folds for cv/tune, of the shuffles for explain."""
    return typer.Option("--repeats", help=help_text, **extra)


def metric_option(help_text: str, **extra: Any) -> Any:
    """`--metric`: the one that ranks (tune) or the one lost (explain)."""
    return typer.Option("--metric", help=help_text, metavar="NAME", **extra)


Repeats = Annotated[
    int,
    repeats_option(
        "Repeat the K folds this many times, each with a different shuffle of the seed.",
        min=1,
        rich_help_panel="Cross-validation",
    ),
]


# --------------------------------------------------------------------------- reading
def sep_option(default: str) -> Any:
    """`--sep` for commands that read a table outside the settings."""
    return typer.Option(
        "--sep",
        help=f"Field delimiter of DATA \\[default: {default}].",
        metavar="CHAR",
        rich_help_panel=READING,
    )


#: The reading options of commands that use a model: they default to the model's own.
ModelSep = Annotated[str | None, sep_option("as in training")]
ModelDecimal = Annotated[
    str | None,
    typer.Option(
        "--decimal",
        help="Decimal mark of DATA \\[default: as in training].",
        metavar="CHAR",
        rich_help_panel=READING,
    ),
]
Transpose = Annotated[
    bool | None,
    typer.Option(
        "--transpose/--no-transpose",
        help="DATA is features x samples (genes as rows) \\[default: as in training].",
        show_default=False,
        rich_help_panel=READING,
    ),
]
ChunkSize = Annotated[
    int | None,
    typer.Option(
        "--chunk-size",
        min=1,
        help="Rows read and predicted at a time, rounded up to a multiple of 1024; bounds memory "
        "\\[default: 2.5 million cells' worth, 25,000 rows of 100 features].",
        show_default=False,
        rich_help_panel=READING,
    ),
]
CacheDir = Annotated[
    str | None,
    typer.Option(
        "--cache",
        metavar="DIR",
        help="Keep parsed tables in DIR, so the next command on the same file skips parsing "
        "\\[default: $MLPCLI_CACHE_DIR, else $XDG_CACHE_HOME/mlpcli or ~/.cache/mlpcli].",
        show_default=False,
        rich_help_panel=READING,
    ),
]
NoCache = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Parse every table; read and write no table cache.",
        rich_help_panel=READING,
    ),
]
OutOfCore = Annotated[
    str,
    typer.Option(
        "--out-of-core",
        help="Work from the table cache on disk instead of memory: auto (when the table would "
        "not fit; said on stderr), on, off. For CSV/TSV tables. train works out of core; cv, "
        "tune and explain do not yet: they refuse on, and auto warns when the table would "
        "not fit.",
        metavar="NAME",
        rich_help_panel=READING,
        autocompletion=completion("mlpcli.outofcore", "MODES"),
    ),
]
Threshold = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        help="Decision threshold on the probability, for binary and multilabel models "
        "\\[default: the model's, from train --threshold; else 0.5].",
        metavar="P",
        show_default=False,
    ),
]


# --------------------------------------------------------------------------- parallel
BACKENDS = ("local", "dask")
NJobs = Annotated[
    int,
    typer.Option(
        "--n-jobs",
        "-j",
        help="Tasks run at once on this machine; -1 for every core. Each task has its own "
        "seed and a fixed number of BLAS threads, so results do not depend on N.",
        rich_help_panel=PARALLEL,
    ),
]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Where tasks run: local (joblib processes) or dask (a dask.distributed cluster; "
        'needs the dask extra: pip install ".\\[dask]" in the mlpcli checkout).',
        metavar="NAME",
        rich_help_panel=PARALLEL,
        autocompletion=lambda: list(BACKENDS),
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="Address of the dask scheduler for --backend dask, e.g. tcp://10.0.0.5:8786.",
        rich_help_panel=PARALLEL,
    ),
]
ShipData = Annotated[
    bool,
    typer.Option(
        "--ship-data",
        help="With --backend dask, send the data to the workers through the scheduler "
        "instead of letting them read the files themselves (without a shared filesystem; "
        "a worker that does not see the files is detected and also gets them sent).",
        rich_help_panel=PARALLEL,
        metavar="",
    ),
]


# --------------------------------------------------------------------------- generated
def _default_text(value: Any) -> str | bool:
    if value is None:
        return False
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else False
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _metavar(annotation: str) -> str:
    """What a value looks like, from the field's type: options are parsed from text."""
    for kind, metavar in TYPE_METAVARS.items():
        if kind.__name__ in annotation:
            return metavar
    return "VALUE"


def _parameter(f: dataclasses.Field[Any], panel: str) -> inspect.Parameter:
    meta = f.metadata
    help_text = meta["help"]
    if meta["choices"]:
        help_text += f" One of: {', '.join(meta['choices'])}."
    decls = [flag(f.name)]
    if f.type in ("bool", bool):
        decls = [f"{flag(f.name)}/--no-{f.name.replace('_', '-')}"]
        kind: Any = bool | None
    elif meta["repeatable"]:
        kind = list[str] | None
    else:
        kind = str | None
    metavar = meta["metavar"] or ("NAME" if meta["choices"] else _metavar(str(f.type)))
    if meta["short"]:
        decls.append(meta["short"])
    default = _default_text(f.default)
    if default is not False and "[default" not in help_text:
        help_text += f" [default: {default}]"
    choices = meta["choices"]
    # Rich markup would swallow "[default: ...]" as a tag.
    help_text = help_text.replace("[", "\\[")
    info = typer.Option(
        *decls,
        help=help_text,
        show_default=False,
        rich_help_panel=panel,
        metavar=metavar,
        autocompletion=(lambda: list(choices)) if choices else None,
    )
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind, info]
    )


def settings_parameters(sections: Iterable[str] = tuple(SECTIONS)) -> list[inspect.Parameter]:
    """One Typer option per settings field of the named sections."""
    return [
        _parameter(f, panel)
        for panel in sections
        for f in dataclasses.fields(SECTIONS[panel])
        if f.metadata["cli"]
    ]


def with_settings_options(
    sections: Iterable[str] = tuple(SECTIONS),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add every settings option to a command; the command receives them as `options`, a dict
    of the values given on the command line (None where not given)."""
    extra = settings_parameters(sections)
    names = {p.name for p in extra}

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "options"]
        clash = names & {p.name for p in own}
        if clash:
            raise TypeError(f"{func.__name__} redefines settings options {sorted(clash)}")

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            options = {name: kwargs.pop(name) for name in names if name in kwargs}
            return func(options=options, **kwargs)

        positional = [p for p in own if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p for p in own if p.kind is inspect.Parameter.KEYWORD_ONLY]
        command.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*positional, *keyword, *extra]
        )
        return command

    return decorate
