"""`mlpcli report`: a model card as one self-contained HTML file.

Everything comes from the model file's metadata (data summary, preprocessing, architecture,
optimizer and settings, history, metrics, provenance) plus, with a test table, metrics and
evaluation plots on it. Images are embedded as base64 `data:` URIs and the CSS is inline, so the
file opens offline, mails as one attachment and never fetches anything. Every piece of text
from the model or the data is escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlpcli import __version__, calibration, describe, modelfile, plotting
from mlpcli import task as tasks
from mlpcli.outputs import check_writable, sha256_file, write_text

#: Report sections whose dict values are averages, flattened into the headline metric table.
_AVERAGE_KEYS = ("macro_avg", "weighted_avg", "average")
#: Per-class / per-target breakdowns, each rendered as its own table.
_BREAKDOWN_KEYS = ("per_class", "per_target")
#: What the table given to `report` is called when it holds the model's own training rows.
NOT_A_TEST = "training data — not a test"
_SPLITS = ("train", "validation", "test", NOT_A_TEST)


@dataclass
class TableEvaluation:
    """Metrics and plot inputs of a trained model on a table with known targets."""

    source: str
    sha256: str
    n_rows: int
    n_dropped: int
    report: dict[str, Any]
    task: str
    y_true: NDArray[Any]
    outputs: NDArray[Any]
    labels: list[str]
    #: `overlap.Overlap.warning` when the table holds training rows, else None.
    not_a_test: str | None = None

    @property
    def split(self) -> str:
        """The table's column in the metric table: "test", unless it is training data."""
        return NOT_A_TEST if self.not_a_test else "test"


def evaluate_table(model_path: str, path: str) -> TableEvaluation:
    """`mlpcli evaluate`'s evaluation of a table (same reading, streaming and exact forward),
    with `y_true`/`outputs` ready for `plotting.evaluation_figures`."""
    from mlpcli import overlap, predicting

    evaluation = predicting.evaluate_table(model_path, path, command_name="report")
    document = evaluation.document
    checksums = {i["path"]: i["sha256"] for i in document["provenance"]["inputs"]}
    return TableEvaluation(
        source=document["data"],
        sha256=checksums[document["data"]],
        n_rows=document["n_evaluated"],
        n_dropped=document["n_missing_target"],
        report=document["metrics"],
        task=document["task"],
        y_true=np.asarray(evaluation.y_true),
        outputs=np.asarray(evaluation.outputs),
        labels=list(evaluation.labels),
        not_a_test=overlap.Overlap(document["data"], **_overlap_fields(document)).warning("report"),
    )


def _overlap_fields(document: dict[str, Any]) -> dict[str, Any]:
    found = document.get("data_overlap", {})
    return {
        "role": found.get("same_table_as"),
        "shared_ids": found.get("shared_ids", 0),
        "checked_ids": found.get("checked_ids", 0),
    }


# --------------------------------------------------------------------------- HTML helpers
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """Numbers to four significant digits, None as a dash, lists comma-joined; escaped."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _e(f"{value:.4g}")
    if isinstance(value, list | tuple):
        return _e(", ".join(str(v) for v in value)) if value else "–"
    if isinstance(value, dict):
        return _e(json.dumps(value, sort_keys=True))
    return _e(value)


def _table(
    rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None, cls: str = ""
) -> str:
    """An HTML table; cells are formatted and escaped unless wrapped in `_Raw`."""
    out = [f'<table class="{_e(cls)}">' if cls else "<table>"]
    if header:
        out.append("<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        cells = "".join(f"<td>{c.html if isinstance(c, _Raw) else _fmt(c)}</td>" for c in row)
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


@dataclass(frozen=True)
class _Raw:
    """Already-safe HTML for a table cell."""

    html: str


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    return _table(([_Raw(f"<b>{_e(k)}</b>"), v] for k, v in pairs), cls="kv")


def _image(png: bytes, alt: str, wide: bool = False) -> str:
    data = base64.b64encode(png).decode("ascii")
    cls = ' class="wide"' if wide else ""
    return f'<figure{cls}><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></figure>'


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{_e(summary)}</summary>{body}</details>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{body}</section>'


# --------------------------------------------------------------------------- sections
def _data_section(meta: dict[str, Any]) -> str:
    training, settings = meta.get("training", {}), meta.get("settings", {}).get("data", {})
    target = meta.get("target", {})
    provenance = meta.get("provenance", {})
    features = meta.get("feature_columns", [])
    kinds: dict[str, int] = {}
    for column in meta.get("preprocessing", {}).get("columns", []):
        kinds[column.get("kind", "?")] = kinds.get(column.get("kind", "?"), 0) + 1
    pairs: list[tuple[str, Any]] = [
        ("task", f"{meta.get('task')} ({meta.get('task_reason', '')})"),
        ("target column(s)", target.get("targets", settings.get("target"))),
        ("labels", target.get("labels") or None),
        ("ID column(s)", meta.get("id_columns") or None),
        ("training rows", training.get("n_train")),
        ("validation rows", training.get("n_valid")),
        ("rows dropped (missing target)", training.get("n_dropped_targets")),
        (
            "validation",
            f"file {settings['valid_file']}"
            if settings.get("valid_file")
            else f"fraction {settings.get('valid_fraction')} split off the table",
        ),
        ("groups kept together", settings.get("group")),
        ("feature columns", f"{len(features)} ({', '.join(f'{n} {k}' for k, n in kinds.items())})"),
    ]
    inputs = _table(
        (
            [i.get("path"), _Raw(f"<code>{_e(i.get('sha256'))}</code>")]
            for i in provenance.get("inputs", [])
        ),
        header=["input table", "SHA-256"],
    )
    return _section(
        "data",
        "Data",
        _kv(pairs)
        + inputs
        + _details(f"all {len(features)} feature columns", f"<p>{_fmt(features)}</p>"),
    )


def _preprocessing_section(meta: dict[str, Any]) -> str:
    pre = meta.get("preprocessing", {})
    options = pre.get("options", {})
    columns = pre.get("columns", [])
    rows = [
        [c.get("name"), c.get("kind"), _levels(c.get("levels") or []), c.get("indicator")]
        for c in columns
    ]
    body = (
        "<p>Fitted on the training rows only and stored in the model file; new tables are "
        "transformed by column name.</p>"
        + _kv(sorted(options.items()))
        + _details(
            f"{len(columns)} input columns",
            _table(rows, header=["column", "kind", "levels", "missing indicator"]),
        )
    )
    return _section("preprocessing", "Preprocessing", body)


def _levels(levels: list[Any], shown: int = 12) -> str:
    text = ", ".join(str(v) for v in levels[:shown])
    return text + (f", … ({len(levels)} in all)" if len(levels) > shown else "")


#: The recipe's settings shown in the report beside the architecture (a `--preset` model).
REPORTED_RECIPE = ("embedding", "n_members", "ensemble", "label_smoothing", "lr", "lr_schedule")


def _architecture_section(meta: dict[str, Any]) -> str:
    arch = meta.get("architecture", {})
    sizes = [arch.get("n_inputs"), *arch.get("hidden_layer_sizes", []), arch.get("n_outputs")]
    names = meta.get("layer_names") or [f"layer {i + 1}" for i in range(len(sizes) - 1)]
    activations = [*arch.get("activation", []), arch.get("output_activation")]
    n_params = meta.get("n_parameters") or []
    n_params = n_params if isinstance(n_params, list) else [n_params]
    rows = [
        [
            name,
            f"{sizes[i]} → {sizes[i + 1]}" if i + 1 < len(sizes) else "–",
            activations[i] if i < len(activations) else "–",
            f"{n_params[i]:,}" if i < len(n_params) else "–",
        ]
        for i, name in enumerate(names)
    ]
    total = sum(int(n) for n in n_params if isinstance(n, int | float))
    rows.append([_Raw("<b>total</b>"), "", "", _Raw(f"<b>{total:,}</b>")])
    others = [
        (key, arch.get(key))
        for key in ("loss", "dtype", "batchnorm", "dropout", "residual", "weight_decay", "init")
        if key in arch
    ]
    resolved = describe.resolved_settings(meta).get("model", {})  # `auto` as the run took it
    given = describe.settings_shown(meta.get("settings", {}).get("model", {}), resolved)
    others = [(key, given[key] if key in resolved else value) for key, value in others]
    recipe = meta.get("recipe", {}).get("config", {})
    others.insert(0, ("preset", describe.preset_name(meta)))
    choice = describe.auto_choice(meta.get("auto"))
    if choice:
        others.insert(1, ("auto choice", choice))
    others += [(key, recipe[key]) for key in REPORTED_RECIPE if key in recipe]
    body = _table(rows, header=["layer", "units", "activation", "parameters"]) + _kv(others)
    return _section("architecture", "Architecture", body)


def _training_section(meta: dict[str, Any]) -> str:
    training = meta.get("training", {})
    optimizer = meta.get("optimizer", {})
    settings = meta.get("settings", {}).get("train", {})
    shown = describe.settings_shown(
        settings,
        describe.resolved_settings(meta).get("train", {}),
        describe.settings_not_taken(settings, recipe=bool(meta.get("recipe"))),
    )
    run = [
        (key, training.get(key))
        for key in (
            "epochs_run",
            "best_epoch",
            "monitor",
            "best_value",
            "stop_reason",
            "seconds",
            "interrupted",
        )
        if key in training
    ]
    run.extend(calibration.summary_rows(meta))
    body = (
        '<div class="cols"><div><h3>Optimizer</h3>'
        + _kv(optimizer.items())
        + "</div><div><h3>Run</h3>"
        + _kv(run)
        + "</div></div>"
        + _details(
            "every training setting the optimizer and schedule take (– = their default)",
            _kv(sorted(shown.items())),
        )
    )
    return _section("training", "Optimizer and training", body)


def _curves_section(meta: dict[str, Any], title: str) -> str:
    figure = plotting.training_figure(meta, title)
    body = (
        "<p>Loss and validation metric per epoch with the best epoch marked (★, dotted line), "
        "the gradient norm of each layer on a log scale, and the learning rate.</p>"
        + _image(plotting.png_bytes(figure), "training curves")
    )
    return _section("curves", "Training curves", body)


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    """Scalar metrics of one report, averages flattened as 'macro_avg f1'."""
    out: dict[str, Any] = {}
    for key, value in report.items():
        if isinstance(value, bool) or key == "threshold":
            continue
        if isinstance(value, int | float) or value is None:
            out[key] = value
        elif key in _AVERAGE_KEYS and isinstance(value, dict):
            out.update(
                {
                    f"{key} {k}": v
                    for k, v in value.items()
                    if k != "support" and not isinstance(v, dict)
                }
            )
    return out


def _metrics_section(reports: dict[str, dict[str, Any]]) -> str:
    splits = [s for s in _SPLITS if reports.get(s)]
    if not splits:
        return _section("metrics", "Metrics", "<p>No metrics stored in the model file.</p>")
    headlines = {s: _headline(reports[s]) for s in splits}
    keys: list[str] = []
    for s in splits:
        keys += [k for k in headlines[s] if k not in keys]
    body = _table(
        ([k, *(headlines[s].get(k) for s in splits)] for k in keys),
        header=["metric", *splits],
        cls="metrics",
    )
    blocks = []
    for s in splits:
        report = reports[s]
        parts = [_breakdown(report), _confusion(report)]
        notes = report.get("notes") or []
        if notes:
            parts.append("<ul class=notes>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
        if any(parts):
            blocks.append(f"<div><h3>{_e(s)}</h3>{''.join(parts)}</div>")
    if blocks:
        body += '<div class="cols">' + "".join(blocks) + "</div>"
    return _section("metrics", "Metrics", body)


def _column_rank(name: str) -> tuple[int, str]:
    """The familiar columns first, in their usual order; the rest alphabetically."""
    first = ("precision", "recall", "f1", "support")
    return (first.index(name), "") if name in first else (len(first), name)


def _breakdown(report: dict[str, Any]) -> str:
    for key in _BREAKDOWN_KEYS:
        rows = report.get(key)
        if isinstance(rows, dict) and (len(rows) > 1 or key == "per_class"):
            columns: list[str] = []
            for values in rows.values():
                columns += [
                    c for c, v in values.items() if c not in columns and not isinstance(v, dict)
                ]
            columns.sort(key=_column_rank)
            return _table(
                ([name, *(values.get(c) for c in columns)] for name, values in rows.items()),
                header=[key.replace("per_", ""), *columns],
            )
    return ""


def _confusion(report: dict[str, Any]) -> str:
    cm = report.get("confusion_matrix")
    if not isinstance(cm, dict) or "matrix" not in cm:
        return ""
    labels = cm.get("labels", [])
    rows = [
        [_Raw(f"<b>{_e(label)}</b>"), *row]
        for label, row in zip(labels, cm["matrix"], strict=False)
    ]
    return '<p class="caption">Confusion matrix (rows true, columns predicted)</p>' + _table(
        rows, header=["", *labels], cls="confusion"
    )


def _is_wide(figure: Any) -> bool:
    width, height = figure.get_size_inches()
    return bool(width > 1.6 * height)


def _test_section(test: TableEvaluation) -> str:
    figures = plotting.evaluation_figures(test.task, test.y_true, test.outputs, test.labels)
    images = "".join(
        _image(plotting.png_bytes(f), name.replace("_", " "), wide=_is_wide(f))
        for name, f in figures.items()
    )
    facts = _kv(
        [
            ("table", test.source),
            ("SHA-256", _Raw(f"<code>{_e(test.sha256)}</code>")),
            ("rows evaluated", test.n_rows),
            ("rows dropped (missing target)", test.n_dropped),
        ]
    )
    heading = "Test data: plots"
    if test.not_a_test:
        heading = "Training data — not a test: plots"
        facts = f'<ul class="notes"><li>{_e(test.not_a_test)}</li></ul>' + facts
    return _section("test", heading, facts + f'<div class="figures">{images}</div>')


def _provenance_section(mine: dict[str, Any], training: dict[str, Any]) -> str:
    def block(p: dict[str, Any]) -> str:
        command = p.get("command")
        pairs = [
            (
                "command",
                _Raw(f"<code>{_e(shlex.join(map(str, command)))}</code>") if command else None,
            ),
            ("mlpcli", p.get("mlpcli_version")),
            ("numpy", p.get("numpy_version")),
            ("python", p.get("python_version")),
            ("seed", p.get("seed")),
        ]
        inputs = [
            [i.get("path"), _Raw(f"<code>{_e(i.get('sha256'))}</code>")]
            for i in p.get("inputs", [])
        ]
        return _kv(pairs) + _table(inputs, header=["input", "SHA-256"])

    body = "<h3>Training run</h3>" + block(training) + "<h3>This report</h3>" + block(mine)
    return _section("provenance", "Provenance", body)


def _summary_cards(meta: dict[str, Any], reports: dict[str, dict[str, Any]]) -> str:
    kind = tasks.TASKS.get(str(meta.get("task")))
    metric = kind.card_metric if kind else ""
    cards: list[tuple[str, Any]] = [("task", meta.get("task"))]
    for split in ("validation", "test", NOT_A_TEST):
        value = _headline(reports.get(split) or {}).get(metric)
        if value is not None:
            cards.append(
                (f"{metric} on {split}" if split == NOT_A_TEST else f"{split} {metric}", value)
            )
    n_params = meta.get("n_parameters") or []
    total = sum(n_params) if isinstance(n_params, list) else n_params
    cards += [
        ("parameters", f"{total:,}"),
        (
            "best epoch",
            f"{meta.get('training', {}).get('best_epoch')} of "
            f"{meta.get('training', {}).get('epochs_run')}",
        ),
    ]
    items = "".join(
        f'<div class="card"><div class="label">{_e(k)}</div>'
        f'<div class="value">{_fmt(v)}</div></div>'
        for k, v in cards
    )
    return f'<div class="cards">{items}</div>'


def _json_script(doc: dict[str, Any]) -> str:
    """Machine-readable provenance; '<' escaped so no value can close the script element."""
    text = json.dumps(doc, indent=1, sort_keys=True, default=str).replace("<", "\\u003c")
    return f'<script type="application/json" id="mlpcli-provenance">{text}</script>'


CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --band: #f5f7fa; --accent: #2f6fb3; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--ink); margin: 0; background: #fff; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 64px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 16px 0 8px; color: var(--muted); }
p.sub, p.caption { color: var(--muted); margin: 4px 0 12px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; font-size: 14px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 12px 4px 0; text-align: left;
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
tbody tr:nth-child(even) { background: var(--band); }
table.metrics td:not(:first-child), table.confusion td:not(:first-child) {
  text-align: right; font-variant-numeric: tabular-nums; }
table.kv td:first-child { width: 240px; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       overflow-wrap: anywhere; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px;
        background: var(--band); }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 22px; font-weight: 600; }
.cols { display: flex; flex-wrap: wrap; gap: 32px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.figures figure { flex: 1 1 420px; max-width: 540px; }
.figures figure.wide { flex-basis: 100%; max-width: 100%; }
figure { margin: 8px 0; }
img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
details { margin: 8px 0 16px; }
summary { cursor: pointer; color: var(--accent); }
ul.notes { color: #8a5a00; font-size: 14px; }
footer { margin-top: 48px; color: var(--muted); font-size: 13px; }
"""


def render(
    meta: dict[str, Any],
    title: str,
    provenance: dict[str, Any],
    test: TableEvaluation | None = None,
) -> str:
    """The whole HTML document."""
    reports = dict(meta.get("metrics") or {})
    if test is not None:
        reports[test.split] = test.report
    sections = [
        _data_section(meta),
        _preprocessing_section(meta),
        _architecture_section(meta),
        _training_section(meta),
        _curves_section(meta, title),
        _metrics_section(reports),
    ]
    if test is not None:
        sections.append(_test_section(test))
    sections.append(_provenance_section(provenance, meta.get("provenance", {})))
    nav = "".join(
        f'<a href="#{a}">{_e(t)}</a>'
        for a, t in [
            ("data", "Data"),
            ("preprocessing", "Preprocessing"),
            ("architecture", "Architecture"),
            ("training", "Training"),
            ("curves", "Curves"),
            ("metrics", "Metrics"),
            *([("test", test.split.capitalize() + " plots")] if test is not None else []),
            ("provenance", "Provenance"),
        ]
    )
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="mlpcli {_e(__version__)}">'
        f"<title>Model card: {_e(title)}</title><style>{CSS}</style></head><body><main>"
        f"<header><h1>Model card: {_e(title)}</h1>"
        f'<p class="sub">mlpcli {_e(meta.get("mlpcli_version", "?"))} model, '
        f"report written {_e(when)} by mlpcli {_e(__version__)}</p><nav>{nav}</nav></header>"
        + _summary_cards(meta, reports)
        + "".join(sections)
        + "<footer>Self-contained: every image is embedded; nothing is fetched.</footer>"
        + _json_script({"report": provenance, "training": meta.get("provenance", {})})
        + "</main></body></html>\n"
    )


def write_report(
    model_path: str,
    out: str,
    data_path: str | None = None,
    command: list[str] | None = None,
) -> Path:
    """`mlpcli report`: read the model (and test table), render, write `out` atomically."""
    from mlpcli.outputs import provenance as provenance_of

    plotting.require_matplotlib("mlpcli report")
    check_writable(out, "--out")
    test = None
    meta = modelfile.load_checked(model_path)[0]  # a damaged model gets no model card
    if data_path is not None:
        test = evaluate_table(model_path, data_path)
    inputs = {model_path: sha256_file(model_path)}
    if test is not None:
        inputs[test.source] = test.sha256
    seed = meta.get("settings", {}).get("train", {}).get("seed")
    provenance = provenance_of(command, inputs, seed)
    write_text(out, render(meta, Path(model_path).name, provenance, test), "--out")
    return Path(out)
