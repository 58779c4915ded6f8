"""`mlpcli export`: a model file in a format other tools serve (ONNX; needs the `onnx` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlpcli.cli.common import app, catch_signals, errors_to_exit_codes, make_reporter
from mlpcli.cli.options import LogFormat, ModelArg, Quiet, completion, out_option


@app.command()
@errors_to_exit_codes
def export(
    model: ModelArg,
    *,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="Export format: onnx.",
            metavar="FORMAT",
            autocompletion=completion("mlpcli.export", "FORMATS"),
        ),
    ] = "onnx",
    out: Annotated[str, out_option("File to write, atomically.")],
    quiet: Quiet = False,
    log_format: LogFormat = "text",
) -> None:
    """Export a model for serving elsewhere, as one ONNX graph.

    The graph holds the stored preprocessing (imputation, scaling, clipping, one-hot encoding)
    and the network, with `label` and `probabilities` (or `prediction`) outputs.

    Inputs: `numeric`, float32 of the numeric columns in the order the ONNX metadata lists
    (`numeric_columns`; NaN for missing), and one string input per categorical column ("" for
    missing). `mlpcli inspect` lists the formats a model supports. Needs the onnx package:
    pip install ".\\[onnx]" in the mlpcli checkout.

    Example:

        mlpcli export model.npz --format onnx --out model.onnx
    """
    from mlpcli import export as exporting
    from mlpcli.outputs import check_paths

    reporter = make_reporter(quiet, log_format)
    check_paths({"MODEL": model}, {"--out": out})
    with catch_signals():
        summary = exporting.export_file(model, format, out)
    reporter.message(
        f"Wrote {summary.out} ({summary.format}, {summary.n_inputs} input column(s), "
        f"{summary.n_bytes} bytes)"
    )
    reporter.close()
