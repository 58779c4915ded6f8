"""The command-line interface: parse options, call the library, render results.

Heavy imports (numpy, pandas) happen inside commands so `--help` answers fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mlpcli import __version__

app = typer.Typer(
    name="mlpcli",
    help="Train multilayer perceptrons on tabular CSV data.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlpcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Train multilayer perceptrons on tabular CSV data."""


def main() -> None:
    app()
