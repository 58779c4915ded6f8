"""The command-line interface: the Typer app and its commands, one module per command family.

Importing a command module registers its commands on the shared app. Heavy imports (numpy,
pandas, the library) happen inside commands so `--help` answers fast.
"""

from __future__ import annotations

from mlpcli import cli_cv, cli_explain, cli_model, cli_plot, cli_train
from mlpcli.cli_common import app

__all__ = ["app", "cli_cv", "cli_explain", "cli_model", "cli_plot", "cli_train", "main"]


def main() -> None:
    app()
