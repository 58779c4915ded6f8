"""`--help`, rendered here in plain Python: the usage line, the command's text, and its options
in titled panels (Typer's `rich_help_panel` groups), as Typer's rich help lays them out.

Typer's own rich help imports `typer.rich_utils` (rich's Markdown, markdown_it, pygments and
rich.traceback) and lays out every option in rich tables: over half of `train --help`'s
start-up. This keeps what the help shows (panels and their titles, option names, metavars,
ranges, help texts, defaults, required marks, the commands' one-line summaries) and draws it
with `textwrap` at the terminal's width (`COLUMNS`, else the terminal's, else 80). Colour only
on a terminal, never under `NO_COLOR` or `TERM=dumb`. Help texts keep Typer's rich-markup
convention: `\\[` is a literal bracket, `[bold]...[/bold]` tags are styling (dropped here).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

ARGUMENTS, OPTIONS, COMMANDS = "Arguments", "Options", "Commands"
DEFAULT, REQUIRED, ENVVAR, RANGE = "[default: {}]", "[required]", "[env var: {}]", " [{}]"

#: Rich's markup tags (`[bold]`, `[/]`, `[link=...]`), with any backslashes before them.
_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")
#: Below this many columns for the help text, it goes on the lines under the option instead.
MIN_HELP_WIDTH = 24

_STYLES = {
    "option": "1;36",
    "switch": "1;32",
    "negative": "1;35",
    "metavar": "1;33",
    "required": "31",
    "dim": "2",
    "command": "1;36",
    "usage": "1;33",
}


def plain(markup: str) -> str:
    """Help text as shown, by rich's markup rules: tags dropped, a tag whose bracket has an
    odd number of backslashes before it kept as text, and `\\[` elsewhere shown as `[`."""
    shown, position = [], 0
    for match in _TAG.finditer(markup):
        slashes, tag = match.groups()
        shown.append(markup[position : match.start()].replace("\\[", "["))
        shown.append("\\" * (len(slashes) // 2) + (f"[{tag}]" if len(slashes) % 2 else ""))
        position = match.end()
    shown.append(markup[position:].replace("\\[", "["))
    return "".join(shown)


def width() -> int:
    """The terminal's columns: `COLUMNS` when set, else the terminal's, else 80 (as rich)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), 40)
    return max(shutil.get_terminal_size((80, 24)).columns, 40)


def use_colour(stream: Any = None) -> bool:
    """Colour on a terminal only; `NO_COLOR` (any value) and `TERM=dumb` turn it off."""
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def wrap(text: str, columns: int) -> list[str]:
    """Each line of `text` wrapped at `columns`; an indented line (an example) keeps its
    indent on its continuation lines."""
    lines: list[str] = []
    for line in text.split("\n"):
        indent = line[: len(line) - len(line.lstrip(" "))]
        lines.extend(
            textwrap.wrap(
                line,
                max(columns, 1),
                subsequent_indent=indent if len(indent) < columns // 2 else "",
                break_on_hyphens=False,
                drop_whitespace=True,
            )
            or [""]
        )
    return lines


class _Painter:
    """ANSI styles when colour is on, the text unchanged otherwise."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, style: str) -> str:
        if not self.colour or not text.strip():
            return text
        return f"\x1b[{_STYLES[style]}m{text}\x1b[0m"


# --------------------------------------------------------------------------- what is shown
def _default_text(param: Any, ctx: Any) -> str | None:
    """`[default: X]` as Typer's help computes it, or None when it shows none."""
    extract = getattr(param, "_extract_default_help_str", None)
    if extract is None:  # Click's own options (--help)
        return None
    value = extract(ctx=ctx)
    as_text = isinstance(param.show_default, str)
    if not (as_text or (value is not None and (param.show_default or ctx.show_default))):
        return None
    shown = param._get_default_string(ctx=ctx, show_default_is_str=as_text, default_value=value)
    return DEFAULT.format(shown) if shown else None


def _param_help(param: Any, ctx: Any) -> str:
    """Help text, then the env var, default and required marks, as Typer's panels show them."""
    text = " ".join(
        " ".join(line.strip() for line in paragraph.splitlines())
        for paragraph in (getattr(param, "help", None) or "").split("\n\n")
    )
    parts = [plain(text).strip()]
    envvar = getattr(param, "envvar", None)
    if envvar and getattr(param, "show_envvar", False):
        parts.append(ENVVAR.format(envvar if isinstance(envvar, str) else ", ".join(envvar)))
    default = _default_text(param, ctx)
    if default:
        parts.append(default)
    if param.required:
        parts.append(REQUIRED)
    return " ".join(part for part in parts if part)


def _param_row(param: Any, ctx: Any) -> list[tuple[str, str]]:
    """(text, style) cells: required mark, long names, short names (an argument's name),
    negative long, negative short, metavar and range."""
    argument = param.param_type_name == "argument"
    name = getattr(param, "display_name_raw", None) or (param.name or "").upper()
    if argument and param.metavar is None and param.nargs != 1:
        name += "..."

    def split(opts: Sequence[str]) -> tuple[str, str]:
        long = [o for o in opts if "--" in o]
        short = [name if argument else o for o in opts if "--" not in o]
        return ",".join(long), ",".join(short)

    long, short = split(param.opts)
    negative_long, negative_short = split(param.secondary_opts)
    shown = param.display_type_rich(ctx) if hasattr(param, "display_type_rich") else None
    kind = "" if shown is None else str(shown)
    ranged = getattr(param, "_get_number_range_help_str", None)
    range_text = ranged() if ranged is not None else None
    if range_text:
        kind += RANGE.format(range_text)
    return [
        ("*" if param.required else "", "required"),
        (long, "option"),
        (short, "metavar" if argument else "switch"),
        (negative_long, "negative"),
        (negative_short, "negative"),
        (kind, "metavar"),
    ]


def _panels(command: Any, ctx: Any) -> list[tuple[str, list[Any]]]:
    """(title, params) in Typer's order: the Arguments panel, other argument panels, the
    Options panel, other option panels, each in the order of first appearance."""
    arguments: dict[str, list[Any]] = {ARGUMENTS: []}
    options: dict[str, list[Any]] = {OPTIONS: []}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        kind = param.param_type_name
        panels = arguments if kind == "argument" else options if kind == "option" else None
        if panels is not None:
            default = ARGUMENTS if panels is arguments else OPTIONS
            panels.setdefault(getattr(param, "rich_help_panel", None) or default, []).append(param)
    return [(title, params) for title, params in [*arguments.items(), *options.items()] if params]


def _command_panels(group: Any, ctx: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(name, summary)]) of a group's visible commands, by their help panels."""
    panels: dict[str, list[tuple[str, str]]] = {COMMANDS: []}
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        text = sub.short_help or sub.help or ""
        summary = plain(" ".join(text.strip().split("\n\n")[0].split()))
        deprecated = "(deprecated) " if sub.deprecated else ""
        title = getattr(sub, "rich_help_panel", None) or COMMANDS
        panels.setdefault(title, []).append((sub.name or name, deprecated + summary))
    return [(title, rows) for title, rows in panels.items() if rows]


# --------------------------------------------------------------------------- layout
class _Layout:
    """Panels drawn with box characters (ASCII when the stream cannot encode them)."""

    def __init__(self, columns: int, paint: _Painter, ascii_only: bool) -> None:
        self.columns, self.paint = columns, paint
        self.box = "+-+|++" if ascii_only else "╭─╮│╰╯"

    def panel(self, title: str, rows: list[list[tuple[str, str]]], helps: list[str]) -> list[str]:
        """A titled box of rows: fixed cells, then each row's help wrapped in the room left."""
        top_left, across, top_right, side, bottom_left, bottom_right = tuple(self.box)
        inner = self.columns - 4
        used = [i for i in range(len(rows[0])) if any(row[i][0] for row in rows)]
        widths = {i: max(len(row[i][0]) for row in rows) for i in used}
        fixed = sum(widths[i] + 2 for i in used)
        room = inner - fixed
        below = room < MIN_HELP_WIDTH  # a narrow terminal: the help under the names
        lines = [
            self.paint(f"{top_left}{across} ", "dim")
            + title
            + self.paint(f" {across * max(self.columns - len(title) - 5, 0)}{top_right}", "dim")
        ]
        edge, end = self.paint(f"{side} ", "dim"), self.paint(f" {side}", "dim")
        for row, text in zip(rows, helps, strict=True):
            cells = [self.paint(row[i][0].ljust(widths[i]), row[i][1]) for i in used]
            head = "  ".join(cells)
            head_width = sum(widths[i] for i in used) + 2 * (len(used) - 1)
            wrapped = wrap(text, inner - 4 if below else room) if text else []
            if below or not used:
                body = [(head, head_width)] if used and head_width <= inner else []
                if used and head_width > inner:  # very narrow: one name a line
                    body = [
                        (self.paint(line, style), len(line))
                        for text_, style in (row[i] for i in used)
                        for line in wrap(text_, inner)
                        if text_
                    ]
                indent = " " * (4 if used else 0)
                body += [(indent + line, len(indent) + len(line)) for line in wrapped]
            else:
                first = wrapped[0] if wrapped else ""
                body = [(f"{head}  {first}", fixed + len(first))]
                body += [(" " * fixed + line, fixed + len(line)) for line in wrapped[1:]]
            for shown, length in body:
                lines.append(edge + shown + " " * max(inner - length, 0) + end)
        lines.append(self.paint(f"{bottom_left}{across * (self.columns - 2)}{bottom_right}", "dim"))
        return lines

    def text(self, text: str, style: str | None = None) -> list[str]:
        lines = [f" {line}" if line else "" for line in wrap(text, self.columns - 2)]
        return [self.paint(line, style) for line in lines] if style else lines


def describe(command: Any, ctx: Any) -> dict[str, Any]:
    """What the help of a Click command (Typer's, or a group) shows, as plain data (JSON):
    `draw` lays it out, and `cli/helpcache.py` keeps it so the next `--help` needs no Typer."""
    panels = [
        {
            "title": title,
            "rows": [_param_row(param, ctx) for param in params],
            "helps": [_param_help(param, ctx) for param in params],
        }
        for title, params in _panels(command, ctx)
    ]
    commands = _command_panels(command, ctx) if hasattr(command, "list_commands") else []
    return {
        "usage": " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)]),
        "help": plain(command.help or "").partition("\f")[0].strip(),
        "panels": panels,
        "commands": [{"title": title, "rows": rows} for title, rows in commands],
        "epilog": plain(command.epilog or ""),
    }


def draw(doc: dict[str, Any], stream: Any = None) -> str:
    """A `describe` document as the terminal shows it, at its width, in colour on a terminal."""
    stream = sys.stdout if stream is None else stream
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("_", "-")
    paint = _Painter(use_colour(stream))
    layout = _Layout(width(), paint, ascii_only=not encoding.startswith("utf"))
    usage = textwrap.wrap(f"Usage: {doc['usage']}", layout.columns - 2, subsequent_indent=" " * 7)
    usage[0] = paint("Usage:", "usage") + usage[0][len("Usage:") :]
    out = ["", *[f" {line}" for line in usage], ""]
    if doc["help"]:
        first, _, rest = doc["help"].partition("\n\n")
        out += [*layout.text(" ".join(first.split())), ""]
        if rest:
            out += [*layout.text(rest, "dim"), ""]
    for panel in doc["panels"]:
        rows = [[(text, style) for text, style in row] for row in panel["rows"]]
        out += layout.panel(panel["title"], rows, panel["helps"])
    name_width = max((len(name) for p in doc["commands"] for name, _ in p["rows"]), default=0)
    for panel in doc["commands"]:
        rows = [[(name.ljust(name_width), "command")] for name, _ in panel["rows"]]
        out += layout.panel(panel["title"], rows, [summary for _, summary in panel["rows"]])
    if doc["epilog"]:
        out += ["", *layout.text(doc["epilog"])]
    return "\n".join(out) + "\n"


def render(command: Any, ctx: Any, stream: Any = None) -> str:
    """The help of a Click command as the terminal shows it."""
    return draw(describe(command, ctx), stream)
