"""Outputs never destroy inputs, a failed run writes nothing, and the standard streams, signals,
integers and names from files behave (issue 12, section 1 and the CLI points of section 2)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import cache_env
from typer.testing import CliRunner

from mlpcli import outputs
from mlpcli.cli import app
from mlpcli.option_parsers import number

ROOT = Path(__file__).resolve().parents[1]
EXPRESSION = ROOT / "sample_data" / "expression.csv"
TRAIN = ["--target", "subtype", "--id", "sample_id", "--epochs", "2", "--hidden", "8", "-q"]
ENV = {"PATH": "/usr/bin:/bin", "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"} | cache_env()


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"}
    )
    return result.exit_code, result.stderr


def mlpcli(
    *args: str | Path, stdout: object = subprocess.PIPE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mlpcli", *map(str, args)],
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        env={**ENV, **(env or {})},
        timeout=120,
        cwd=ROOT,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error: ")]


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".mlpcli-" in p.name)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m.npz"
    code, stderr = run("train", EXPRESSION, *TRAIN, "--out", out)
    assert code == 0, stderr
    return out


@pytest.fixture
def files(tmp_path: Path, model: Path) -> dict[str, Path]:
    """Every kind of input a command reads, as files of their own in tmp_path."""
    made = {
        "data": tmp_path / "data.csv",
        "valid": tmp_path / "valid.csv",
        "model": tmp_path / "model.npz",
        "model_png": tmp_path / "model.png",
        "config": tmp_path / "config.toml",
        "space": tmp_path / "space.toml",
        "baseline": tmp_path / "baseline.csv",
        "groups": tmp_path / "groups.toml",
        "plots": tmp_path / "plots",
    }
    shutil.copy(EXPRESSION, made["data"])
    shutil.copy(EXPRESSION, made["valid"])
    shutil.copy(model, made["model"])
    shutil.copy(model, made["model_png"])
    made["config"].write_text("[train]\nepochs = 2\n")
    made["space"].write_text("lr = [0.01]\n")
    made["baseline"].write_text("GENE001\n0\n")
    made["groups"].write_text('g = ["GENE001", "GENE002"]\n')
    made["plots"].mkdir()
    made["roc"] = made["plots"] / "roc.png"
    shutil.copy(EXPRESSION, made["roc"])
    return made


# command line (with {name} placeholders), the output option, the input it would clobber
CLOBBER_CASES: dict[str, tuple[str, str, str, str]] = {
    "train-out": ("train {data} --target subtype --out {data}", "--out", "DATA", "data"),
    "train-metrics-out": (
        "train {data} --target subtype --out m.npz --metrics-out {data}",
        "--metrics-out",
        "DATA",
        "data",
    ),
    "train-history-out": (
        "train {data} --target subtype --out m.npz --history-out {data}",
        "--history-out",
        "DATA",
        "data",
    ),
    "train-split-out": (
        "train {data} --target subtype --out m.npz --split-out {data}",
        "--split-out",
        "DATA",
        "data",
    ),
    "train-checkpoint": (
        "train {data} --target subtype --out m.npz --checkpoint {data}",
        "--checkpoint",
        "DATA",
        "data",
    ),
    "train-out-valid-file": (
        "train {data} --target subtype --valid-file {valid} --out {valid}",
        "--out",
        "--valid-file",
        "valid",
    ),
    "train-out-config": (
        "train {data} --target subtype --config {config} --out {config}",
        "--out",
        "--config",
        "config",
    ),
    "train-out-resume": (
        "train {data} --target subtype --resume {model} --out {model}",
        "--out",
        "--resume",
        "model",
    ),
    "predict-out-data": ("predict {model} {data} --out {data}", "--out", "DATA", "data"),
    "predict-out-model": ("predict {model} {data} --out {model}", "--out", "MODEL", "model"),
    "evaluate-out-data": ("evaluate {model} {data} --out {data}", "--out", "DATA", "data"),
    "evaluate-out-model": ("evaluate {model} {data} --out {model}", "--out", "MODEL", "model"),
    "evaluate-plots": ("evaluate {model} {roc} --plots {plots}", "--plots", "DATA", "roc"),
    "explain-out": ("explain {model} {data} --out {data}", "--out", "DATA", "data"),
    "explain-out-baseline": (
        "explain {model} {data} --method integrated-gradients --baseline {baseline} "
        "--out {baseline}",
        "--out",
        "--baseline",
        "baseline",
    ),
    "explain-out-groups": (
        "explain {model} {data} --group-features {groups} --out {groups}",
        "--out",
        "--group-features",
        "groups",
    ),
    "explain-plot": (
        "explain {model_png} {data} --plot {model_png}",
        "--plot",
        "MODEL",
        "model_png",
    ),
    "cv-out": ("cv {data} --target subtype --out {data}", "--out", "DATA", "data"),
    "cv-oof-out": ("cv {data} --target subtype --oof-out {data}", "--oof-out", "DATA", "data"),
    "cv-out-config": (
        "cv {data} --target subtype --config {config} --out {config}",
        "--out",
        "--config",
        "config",
    ),
    "tune-results-csv": (
        "tune {data} --target subtype --space {space} --results-csv {data}",
        "--results-csv",
        "DATA",
        "data",
    ),
    "tune-results-json": (
        "tune {data} --target subtype --space {space} --results-json {space}",
        "--results-json",
        "--space",
        "space",
    ),
    "tune-out": (
        "tune {data} --target subtype --space {space} --out {data}",
        "--out",
        "DATA",
        "data",
    ),
    "plot-out": ("plot {model_png} --out {model_png}", "--out", "MODEL", "model_png"),
    "report-out-model": ("report {model} --out {model}", "--out", "MODEL", "model"),
    "report-out-data": ("report {model} --data {data} --out {data}", "--out", "--data", "data"),
}


@pytest.mark.parametrize("case", list(CLOBBER_CASES), ids=list(CLOBBER_CASES))
def test_an_output_onto_an_input_is_refused_and_the_input_kept(
    files: dict[str, Path], tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.startswith(("plot", "report", "evaluate-plots", "explain-plot")):
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    line, output, source, victim = CLOBBER_CASES[case]
    before = {name: path.read_bytes() for name, path in files.items() if path.is_file()}
    code, stderr = run(*line.format(**{k: str(v) for k, v in files.items()}).split())
    assert code == 2, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    assert f"{output} '" in errors[0] and f"input {source} '" in errors[0], errors[0]
    assert "would destroy" in errors[0]
    for name, content in before.items():
        assert files[name].read_bytes() == content, name
    assert files[victim].read_bytes() == before[victim]
    assert not (tmp_path / "m.npz").exists()
    assert temps(tmp_path) == []


@pytest.mark.parametrize(
    "link", ["hard", "symbolic", "dot-slash", "symlinked-folder"], ids=lambda s: s
)
def test_aliases_of_the_input_are_refused(tmp_path: Path, link: str) -> None:
    data = tmp_path / "data.csv"
    shutil.copy(EXPRESSION, data)
    alias = tmp_path / "alias.csv"
    if link == "hard":
        os.link(data, alias)
    elif link == "symbolic":
        alias.symlink_to(data)
    elif link == "dot-slash":
        alias = tmp_path / "." / "data.csv"
    else:
        (tmp_path / "folder").symlink_to(tmp_path)
        alias = tmp_path / "folder" / "data.csv"
    code, stderr = run("train", data, *TRAIN, "--out", alias)
    assert code == 2 and "--out" in stderr and "input DATA" in stderr, stderr
    assert data.read_bytes() == EXPRESSION.read_bytes()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("--metrics-out", "--history-out"),
        ("--out", "--split-out"),
        ("--history-out", "--checkpoint"),
    ],
)
def test_two_outputs_on_one_path_are_refused(tmp_path: Path, first: str, second: str) -> None:
    extra = [] if "--out" in (first, second) else ["--out", str(tmp_path / "m.npz")]
    code, stderr = run(
        "train", EXPRESSION, *TRAIN, *extra, first, tmp_path / "x", second, f"{tmp_path}/./x"
    )
    assert code == 2, stderr
    (error,) = error_lines(stderr)
    assert first in error and second in error and "are the same file" in error
    assert list(tmp_path.iterdir()) == []


def test_json_and_out_to_stdout_are_refused_by_the_same_check(model: Path) -> None:
    code, stderr = run("evaluate", model, EXPRESSION, "--json", "--out", "-")
    assert code == 2 and "--json and --out - both write to stdout" in stderr


def test_continuing_a_checkpoint_into_itself_is_allowed(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.npz"
    args = ("train", EXPRESSION, *TRAIN, "--out", tmp_path / "m.npz", "--checkpoint", ckpt)
    assert run(*args)[0] == 0
    code, stderr = run(*args, "--resume", ckpt)
    assert code == 0, stderr


# --------------------------------------------------------------------------- non-regular targets
def test_a_character_device_output_is_written_in_place(tmp_path: Path) -> None:
    # A null device of our own in tmp_path: a regression must never replace the real /dev/null.
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        null.write_bytes(b"probe")
    except OSError as exc:
        pytest.skip(f"cannot make a device node here ({exc.strerror})")
    code, stderr = run(
        *("train", EXPRESSION, *TRAIN, "--out", tmp_path / "m.npz"),
        *("--metrics-out", null, "--history-out", null),
    )
    assert code == 0, stderr
    assert stat.S_ISCHR(os.stat(null).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "null"]


def test_a_fifo_output_receives_the_file_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "metrics.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, stderr = run(
        "train", EXPRESSION, *TRAIN, "--out", tmp_path / "m.npz", "--metrics-out", fifo
    )
    reader.join(30)
    assert code == 0, stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(received[0])["task"] == "multiclass"


@pytest.mark.slow
def test_a_link_to_stdout_is_written_through_never_replaced(tmp_path: Path) -> None:
    # /dev/stdout itself is never used here: a regression would replace the machine's own.
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    done = mlpcli("train", EXPRESSION, *TRAIN, "--out", tmp_path / "m.npz", "--metrics-out", link)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task"] == "multiclass"
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


# --------------------------------------------------------------------------- modes and temporaries
def test_an_overwritten_output_keeps_its_mode(tmp_path: Path) -> None:
    metrics, model = tmp_path / "metrics.json", tmp_path / "m.npz"
    metrics.write_text("old")
    metrics.chmod(0o600)
    code, _ = run("train", EXPRESSION, *TRAIN, "--out", model, "--metrics-out", metrics)
    assert code == 0
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o600 and metrics.read_text() != "old"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(model.stat().st_mode) == 0o666 & ~umask


def test_a_symlinked_output_is_written_through_the_link(tmp_path: Path) -> None:
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("old")
    link.symlink_to(real)
    code, _ = run("train", EXPRESSION, *TRAIN, "--out", tmp_path / "m.npz", "--metrics-out", link)
    assert code == 0 and link.is_symlink() and json.loads(real.read_text())["task"] == "multiclass"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_runs_are_removed_live_ones_kept(tmp_path: Path) -> None:
    host = outputs._HOST
    dead = tmp_path / f".m.npz.mlpcli-{host}-{_dead_pid()}-0a1b2c3d.tmp"
    live = tmp_path / f".m.npz.mlpcli-{host}-{os.getppid()}-0a1b2c3d.tmp"
    foreign_old = tmp_path / ".m.npz.mlpcli-otherhost-1-0a1b2c3d.tmp"
    foreign_new = tmp_path / ".m.npz.mlpcli-otherhost-2-0a1b2c3d.tmp"
    unrelated = tmp_path / ".m.npz.tmp"
    for path in (dead, live, foreign_old, foreign_new, unrelated):
        path.write_text("partial")
    old = time.time() - outputs.FOREIGN_STALE_SECONDS - 60
    os.utime(foreign_old, (old, old))
    code, _ = run("train", EXPRESSION, *TRAIN, "--out", tmp_path / "m.npz")
    assert code == 0
    assert not dead.exists() and not foreign_old.exists()
    assert live.exists() and foreign_new.exists() and unrelated.exists()


@pytest.mark.slow
def test_a_kill_9_leaves_a_named_temporary_that_the_next_run_removes(
    tmp_path: Path, model: Path
) -> None:
    fifo, out = tmp_path / "in.fifo", tmp_path / "pred.csv"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlpcli",
            "predict",
            str(model),
            str(fifo),
            "--out",
            str(out),
            "--chunk-size",
            "1024",
        ],
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    with open(fifo, "w") as writer:
        header, *rows = EXPRESSION.read_text().splitlines(keepends=True)
        writer.writelines([header, *rows, *rows, *rows])  # more than one chunk, then a wait
        writer.flush()
        deadline = time.time() + 60
        while not temps(tmp_path) and time.time() < deadline:
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    (left,) = temps(tmp_path)
    assert left.startswith(".pred.csv.mlpcli-") and f"-{proc.pid}-" in left
    assert not out.exists()
    code, stderr = run("predict", model, EXPRESSION, "--out", out)
    assert code == 0, stderr
    assert temps(tmp_path) == [] and out.exists()


# --------------------------------------------------------------------------- all or nothing
def test_a_run_failing_on_its_last_output_writes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlpcli import pipeline

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline.pd.DataFrame, "to_csv", full_disk)  # --split-out is last
    code, stderr = run(
        *("train", EXPRESSION, *TRAIN, "--out", tmp_path / "m.npz"),
        *("--metrics-out", tmp_path / "m.json", "--history-out", tmp_path / "h.csv"),
        *("--split-out", tmp_path / "split.csv"),
    )
    assert code == 2, stderr
    assert error_lines(stderr) == [
        f"Error: --split-out '{tmp_path / 'split.csv'}': no space left on the device."
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_an_interrupted_evaluate_leaves_neither_json_nor_plots(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    from mlpcli import plotting

    drawn: list[object] = []
    save = plotting.save_figure

    def interrupted_on_the_second(*args: object, **kwargs: object) -> object:
        if drawn:
            raise KeyboardInterrupt
        drawn.append(save(*args, **kwargs))  # type: ignore[arg-type]
        return drawn[-1]

    monkeypatch.setattr(plotting, "save_figure", interrupted_on_the_second)
    plots = tmp_path / "plots"
    code, stderr = run(
        "evaluate", model, EXPRESSION, "--out", tmp_path / "e.json", "--plots", plots
    )
    assert code == 130, stderr
    assert drawn and not (tmp_path / "e.json").exists()
    assert list(plots.iterdir()) == []


def test_commit_holds_a_signal_until_every_file_is_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    install = outputs._Target.install
    calls: list[Path] = []

    def install_then_signal(self: outputs._Target, tmp: Path) -> None:
        calls.append(self.path)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)
        install(self, tmp)

    monkeypatch.setattr(outputs._Target, "install", install_then_signal)
    # Python's own SIGINT handler, whatever an earlier test or imported library left installed.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    with pytest.raises(KeyboardInterrupt), outputs.staged_outputs():
        outputs.write_text(tmp_path / "a.txt", "a")
        outputs.write_text(tmp_path / "b.txt", "b")
    assert (tmp_path / "a.txt").read_text() == "a" and (tmp_path / "b.txt").read_text() == "b"
    assert temps(tmp_path) == []


# --------------------------------------------------------------------------- standard streams
@pytest.mark.slow
def test_version_into_a_full_stdout_is_one_error_line() -> None:
    with open("/dev/full", "w") as full:
        done = mlpcli("--version", stdout=full)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "Error: cannot write to standard output (No space left on device); free space or "
        "redirect it elsewhere."
    ]


@pytest.mark.parametrize(
    "command",
    [["--version"], ["inspect", "{model}"], ["predict", "{model}", str(EXPRESSION)]],
    ids=["version", "inspect", "predict"],
)
@pytest.mark.slow
@pytest.mark.parametrize("stream", ["closed", "full"])
def test_closed_or_full_stdout_exits_2_with_one_line(
    model: Path, command: list[str], stream: str
) -> None:
    args = [a.format(model=model) for a in command]
    if stream == "closed":
        done = subprocess.run(
            [sys.executable, "-m", "mlpcli", *args],
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=120,
            preexec_fn=lambda: os.close(1),
        )
    else:
        with open("/dev/full", "w") as full:
            done = mlpcli(*args, stdout=full)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert len(error_lines(stderr)) == 1 and "Traceback" not in stderr
    assert "standard output" in error_lines(stderr)[0]


@pytest.mark.slow
def test_a_reader_that_goes_away_is_exit_141_without_a_message(model: Path) -> None:
    read, write = os.pipe()
    os.close(read)
    done = mlpcli("evaluate", model, EXPRESSION, "--json", stdout=write)
    os.close(write)
    assert done.returncode == 141
    assert "Error" not in done.stderr.decode() and "Traceback" not in done.stderr.decode()


# --------------------------------------------------------------------------- signals while reading
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "predict", "evaluate"])
def test_a_signal_while_reading_a_table_is_130_or_143(
    tmp_path: Path, model: Path, command: str, signum: int, code: int
) -> None:
    fifo, out = tmp_path / "slow.fifo", tmp_path / "out.file"
    os.mkfifo(fifo)
    args = {
        "train": ["train", str(fifo), "--target", "subtype", "--out", str(out)],
        "predict": ["predict", str(model), str(fifo), "--out", str(out) + ".csv"],
        "evaluate": ["evaluate", str(model), str(fifo), "--out", str(out)],
    }[command]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpcli", *args], stderr=subprocess.PIPE, text=True, env=ENV
    )
    with open(fifo, "w") as writer:
        writer.writelines(EXPRESSION.read_text().splitlines(keepends=True)[:20])
        writer.flush()
        time.sleep(2.0)  # the command is now blocked reading the rest
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert error_lines(stderr) == [f"Error: interrupted ({signal.Signals(signum).name})."]
    assert [p.name for p in tmp_path.iterdir()] == ["slow.fifo"]


# --------------------------------------------------------------------------- integers
@pytest.mark.parametrize(
    ("text", "value"),
    [("9007199254740993", 2**53 + 1), ("1e3", 1000), (" 7 ", 7), (2**64 + 1, 2**64 + 1)],
)
def test_integer_options_are_parsed_exactly(text: object, value: int) -> None:
    assert number(int, 0)("seed", text) == value


@pytest.mark.parametrize("text", ["1.5", "nan", "inf", "1e999999", "abc", True])
def test_integer_options_refuse_what_is_not_a_whole_number(text: object) -> None:
    from mlpcli.errors import UsageError

    with pytest.raises(UsageError, match="--seed must be a whole number"):
        number(int, 0)("seed", text)


def test_a_seed_above_2_53_reaches_the_model_unrounded(tmp_path: Path) -> None:
    from mlpcli import modelfile

    seeds = {}
    for seed in (2**53, 2**53 + 1):
        out = tmp_path / f"{seed}.npz"
        assert run("train", EXPRESSION, *TRAIN, "--seed", str(seed), "--out", out)[0] == 0
        seeds[seed] = modelfile.read_metadata(out)["settings"]["train"]["seed"]
        with np.load(out) as archive:
            seeds[-seed] = archive["net.layer1.W"].tobytes()
    assert seeds[2**53] == 2**53 and seeds[2**53 + 1] == 2**53 + 1
    assert seeds[-(2**53)] != seeds[-(2**53 + 1)]  # different seeds, different initial weights


# --------------------------------------------------------------------------- names from files
@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    lines = ["g\x1b]0;pwned\x07,h\x1b[31mred\u202e,[/],y"]
    lines += [f"{rng.random()},{rng.random()},{'ab'[i % 2]},{'xz'[i % 2]}" for i in range(40)]
    data = folder / "hostile.csv"
    data.write_text("\n".join(lines) + "\n")
    out = folder / "hostile.npz"
    code, stderr = run("train", data, "--target", "y", "--epochs", "2", "-q", "--out", out)
    assert code == 0, stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("colour", ["plain", "terminal"])
def test_inspect_escapes_control_characters_in_names(hostile_model: Path, colour: str) -> None:
    env = {"FORCE_COLOR": "1", "TERM": "xterm"} if colour == "terminal" else {}
    if env:
        env["NO_COLOR"] = ""
    done = mlpcli("inspect", hostile_model, env=env)
    assert done.returncode == 0, done.stderr
    shown = done.stdout.decode()
    assert "\x1b]0;" not in shown and "\x1b[31mred" not in shown and "\u202e" not in shown
    assert "g\\x1b]0;pwned\\x07" in shown and "h\\x1b[31mred\\u202e" in shown
    assert "[/]" in shown  # markup-looking names are text, not a crash


@pytest.mark.slow
def test_messages_escape_control_characters_from_data(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,b,y\n1,2,x\x1b]0;t\x07\n3,4,z\n")
    # One sample per class: a warning naming the class, an error with --strict.
    done = mlpcli("train", data, "--target", "y", "--epochs", "1", "--out", tmp_path / "m.npz")
    stderr = done.stderr.decode()
    assert done.returncode == 0 and "\x1b" not in stderr and "x\\x1b]0;t\\x07" in stderr
    done = mlpcli("train", data, "--target", "y", "--strict", "--out", tmp_path / "m.npz")
    stderr = done.stderr.decode()
    assert done.returncode == 3 and "\x1b" not in stderr and "x\\x1b]0;t\\x07" in stderr
