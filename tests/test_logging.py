"""Pipeline logs and provenance, from real runs of the installed `mlpcli` with stderr a pipe:
`--log-format jsonl` is one JSON object per line and nothing else, plain text has no control
characters, and `--metrics-out` says where the result came from."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlpcli

#: End to end (training runs in real processes): deselected by `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "sample_data" / "expression.csv"
EPOCHS = 6
#: Anything a terminal would interpret: C0 controls except newline and tab, DEL, C1 controls.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
EPOCH_KEYS = {"epoch", "train_loss", "val_loss", "val_metric", "lr", "grad_norms", "best_epoch"}


def mlpcli_command() -> list[str]:
    """The installed console script next to this Python, else `python -m mlpcli`."""
    script = Path(sys.executable).with_name("mlpcli")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlpcli"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # A colour-capable TERM and a wide terminal, but stderr is a pipe: no control characters.
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    env.update(TERM="xterm-256color", COLUMNS="120")
    return subprocess.run(
        [*mlpcli_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def train_args(out: str, log_format: str) -> list[str]:
    return [
        "train",
        str(DATA),
        "--target",
        "subtype",
        "--id",
        "sample_id",
        "--epochs",
        str(EPOCHS),
        "--seed",
        "7",
        "--log-format",
        log_format,
        "--log-every",
        "1",
        "--out",
        out,
        "--metrics-out",
        "metrics.json",
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("logs")
    jsonl = run(train_args("model.npz", "jsonl"), folder)
    text = run(train_args("text.npz", "text"), folder)  # rewrites metrics.json: read it first
    return {"folder": folder, "jsonl": jsonl, "text": text}


def test_jsonl_is_one_json_object_per_line_and_nothing_else(runs: dict[str, Any]) -> None:
    done = runs["jsonl"]
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert not CONTROL.search(done.stderr)
    lines = done.stderr.splitlines()
    assert lines and all(lines), "blank lines on stderr"
    events = [json.loads(line) for line in lines]  # every line parses, or this fails
    assert all(isinstance(e, dict) and isinstance(e.get("event"), str) for e in events)
    assert all(isinstance(e.get("time"), float) for e in events)
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    assert all(e.keys() >= EPOCH_KEYS for e in epochs)
    assert all(len(e["grad_norms"]) == 3 for e in epochs)  # two hidden layers and the output
    start = [e for e in events if e["event"] == "start"]
    assert len(start) == 1 and start[0]["epochs"] == EPOCHS and start[0]["n_valid"] == 120
    assert events.index(start[0]) < events.index(epochs[0])


def test_plain_text_has_no_control_characters(runs: dict[str, Any]) -> None:
    done = runs["text"]
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert not CONTROL.search(done.stderr), repr(CONTROL.search(done.stderr))
    epoch_lines = [line for line in done.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == [f"{e}/{EPOCHS}" for e in range(1, 7)]
    assert "val_accuracy=" in epoch_lines[0]


def test_metrics_out_carries_provenance(runs: dict[str, Any]) -> None:
    """Command line, mlpcli and numpy versions, seed and the SHA-256 of each input."""
    doc = json.loads((runs["folder"] / "metrics.json").read_text())
    provenance = doc["provenance"]
    assert provenance["command"][1:] == train_args("text.npz", "text")
    assert Path(provenance["command"][0]).name in ("mlpcli", "__main__.py")
    assert provenance["mlpcli_version"] == mlpcli.__version__
    assert provenance["numpy_version"] == np.__version__
    assert provenance["seed"] == 7
    digest = hashlib.sha256(DATA.read_bytes()).hexdigest()
    assert provenance["inputs"] == [{"path": str(DATA), "sha256": digest}]


def test_jsonl_and_text_train_the_same_model(runs: dict[str, Any]) -> None:
    """The log format changes what is shown, never what is learned."""
    from mlpcli import modelfile

    a = modelfile.read_metadata(runs["folder"] / "model.npz")["training"]["history"]
    b = modelfile.read_metadata(runs["folder"] / "text.npz")["training"]["history"]
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux `script` is not installed")
def test_control_characters_only_on_a_terminal(tmp_path: Path) -> None:
    """On a pseudo-terminal the live display may draw; the checks above are not vacuous."""
    command = " ".join([*mlpcli_command(), *train_args("tty.npz", "text")])
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    env.update(TERM="xterm-256color", COLUMNS="120")
    done = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout
    assert "\x1b[" in done.stdout


def screen(raw: str, width: int) -> list[str]:
    """The rows a terminal `width` columns wide shows after `raw`: text wrapping at the right
    edge (xterm's deferred wrap), \\r, \\n, ESC[2K (erase the row) and ESC[nA (up n rows);
    other escape sequences (colours, cursor shown or hidden) change no text."""
    rows, row, col, pending = [""], 0, 0, False

    def next_row() -> None:
        nonlocal row, col
        row, col = row + 1, 0
        if row == len(rows):
            rows.append("")

    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]", raw):
        if token == "\r":
            col, pending = 0, False
        elif token == "\n":
            next_row()
            pending = False
        elif token.startswith("\x1b["):
            if token.endswith("K"):
                rows[row] = ""
            elif token.endswith("A"):
                row, pending = max(0, row - int(token[2:-1] or 1)), False
        else:
            if pending:
                next_row()
                pending = False
            line = rows[row].ljust(col)
            rows[row] = line[:col] + token + line[col + 1 :]
            if col == width - 1:
                pending = True
            else:
                col += 1
    return rows


def test_screen_wraps_like_a_terminal() -> None:
    assert screen("abcde\r\n12", 3) == ["abc", "de", "12"]
    assert screen("abc\x1b[2K\rxy\nz\r\x1b[1A\x1b[2Kq", 3) == ["q", "z"]


def test_ctrl_c_leaves_every_line_on_the_terminal_once(tmp_path: Path) -> None:
    """Ctrl-C typed on the terminal during the live display: the terminal echoes "^C" after
    the last line drawn; on a full-width line that wrapped, and the next redraw left the bar
    line behind, twice on the screen. At 40 columns the stats line is always cut to the width,
    so the run before the fix showed the duplicate every time."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    width = 40
    argv = [*mlpcli_command(), "train", str(DATA), "--target", "subtype", "--id", "sample_id"]
    argv += ["--epochs", "100000", "--patience", "off", "--out", str(tmp_path / "m.npz")]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of `width` columns
        os.environ.update(COLUMNS=str(width), TERM="xterm-256color")
        os.environ.pop("NO_COLOR", None)
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, width, 0, 0))
    out, drawing_since, deadline = b"", None, time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child has gone: the terminal is closed
                break
            if not data:
                break
            out += data
        if drawing_since is None and b"/100000" in out:
            drawing_since = time.monotonic()
        if drawing_since and time.monotonic() - drawing_since > 1.0:
            os.write(fd, b"\x03")  # Ctrl-C, as typed: the terminal sends SIGINT and echoes ^C
            drawing_since = float("inf")
    _, status = os.waitpid(pid, 0)
    rows = [r.rstrip() for r in screen(out.decode("utf-8", "replace"), width) if r.strip()]
    assert os.waitstatus_to_exitcode(status) == 130, rows
    assert drawing_since == float("inf"), "the live display never drew"
    bars = [r for r in rows if r.startswith("tra")]
    assert len(bars) == 1 and "stopped at epoch" in bars[0], rows  # the final bar, once
    drawn = rows[: rows.index("Training summary")]  # the table below repeats its borders
    assert len(drawn) == len(set(drawn)), rows
