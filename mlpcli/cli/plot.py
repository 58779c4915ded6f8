"""`mlpcli plot` and `mlpcli report`: pictures of a trained model (needs the `plot` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlpcli.cli.common import app, catch_signals, errors_to_exit_codes, make_reporter
from mlpcli.cli.options import LogFormat, ModelArg, Quiet, out_option


@app.command()
@errors_to_exit_codes
def plot(
    model: ModelArg,
    *,
    out: Annotated[
        str, out_option("Image to write; the format follows the extension: .png, .svg or .pdf.")
    ],
    quiet: Quiet = False,
    log_format: LogFormat = "text",
) -> None:
    """Draw the training curves of a model.

    Loss and validation metric per epoch with the best epoch marked, each layer's gradient
    norm (log scale) and the learning rate.

    The image carries its provenance (command, versions, the model's SHA-256) in its metadata.
    Needs matplotlib: pip install ".\\[plot]" in the mlpcli checkout.

    Example:

        mlpcli plot model.npz --out curves.png
    """
    from pathlib import Path

    from mlpcli import modelfile, plotting
    from mlpcli.outputs import check_paths, sha256_file
    from mlpcli.outputs import provenance as provenance_of

    reporter = make_reporter(quiet, log_format)
    plotting.require_matplotlib("mlpcli plot")
    plotting.image_format(out)
    check_paths({"MODEL": model}, {"--out": out})
    with catch_signals():
        metadata = modelfile.read_metadata(model)
        seed = metadata.get("settings", {}).get("train", {}).get("seed")
        provenance = provenance_of(None, {model: sha256_file(model)}, seed)
        plotting.plot_training(metadata, out, Path(model).name, provenance)
    reporter.message(f"Wrote {out}")
    reporter.close()


@app.command()
@errors_to_exit_codes
def report(
    model: ModelArg,
    *,
    out: Annotated[str, out_option("HTML file to write.")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="A held-out table with the target column(s): adds its metrics and plots "
            "(confusion matrix, ROC, precision-recall; or predicted-vs-true and residuals).",
            metavar="TABLE",
        ),
    ] = None,
    quiet: Quiet = False,
    log_format: LogFormat = "text",
) -> None:
    """Write a model card: one self-contained HTML file that opens offline.

    The card holds the data summary, preprocessing, architecture, optimizer and settings,
    training curves, metrics, plots on --data, and provenance; images are embedded.

    Needs matplotlib: pip install ".\\[plot]" in the mlpcli checkout.

    Example:

        mlpcli report model.npz --data test.csv --out report.html
    """
    from mlpcli import report as lib
    from mlpcli.outputs import check_paths

    reporter = make_reporter(quiet, log_format)
    check_paths({"MODEL": model, "--data": data}, {"--out": out})
    with catch_signals():
        lib.write_report(model, out, data)
    reporter.message(f"Wrote {out}")
    reporter.close()
