"""Typer options generated from the option fields in `config.py`, so `train`, `cv` and `tune`
share one definition of every option. No logic beyond the translation; no numpy here."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer

from mlpcli.config import SECTIONS, flag


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
    for kind, metavar in (("int", "INT"), ("float", "NUMBER")):
        if kind in annotation:
            return metavar
    return "TEXT"


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
    if kind == bool | None:  # a --x/--no-x pair takes no value
        metavar = ""
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
