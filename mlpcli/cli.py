"""The command-line interface: the Typer app and its commands, one module per command family.

Heavy imports (numpy, pandas, the library) happen inside commands so `--help` answers fast.
"""

from __future__ import annotations

import mlpcli.cli_cv  # noqa: F401  (registers its commands)
import mlpcli.cli_explain  # noqa: F401  (registers its commands)
import mlpcli.cli_model  # noqa: F401  (registers its commands)
from mlpcli import cli_plot as cli_plot  # registers its commands
from mlpcli import cli_train  # noqa: F401  (registers its commands)
from mlpcli.cli_common import app

__all__ = ["app", "main"]


def main() -> None:
    app()
