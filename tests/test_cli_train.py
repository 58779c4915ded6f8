"""`mlpcli train` from the command line: outputs, determinism, atomicity, signals, checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpcli.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXPRESSION = ROOT / "sample_data" / "expression.csv"
RESPONSE = ROOT / "sample_data" / "drug_response.csv"
CONTROL = set(range(0, 32)) - {9, 10, 13}
#: `mlpcli train` on the sample expression table, before the options a test adds.
TRAIN_EXPRESSION = ("train", str(EXPRESSION), "--target", "subtype", "--id", "sample_id")


def run(*args: str) -> tuple[int, str, str]:
    """Invoke the CLI in-process; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "120", "NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def mlpcli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpcli", *args], capture_output=True, text=True, **kwargs
    )


def small_table(path: Path, n: int = 200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["label"] = np.where(X[:, 0] - X[:, 1] > 0, "up", "down")
    frame["sample"] = [f"s{i}" for i in range(n)]
    frame.to_csv(path, index=False)
    return path


def test_train_writes_model_metrics_history_and_split(tmp_path: Path) -> None:
    out = tmp_path / "m.npz"
    code, stdout, stderr = run(
        *TRAIN_EXPRESSION,
        "--out",
        str(out),
        "--metrics-out",
        str(tmp_path / "m.json"),
        "--history-out",
        str(tmp_path / "h.csv"),
        "--split-out",
        str(tmp_path / "s.csv"),
        "--epochs",
        "15",
        "--log-every",
        "5",
    )
    assert code == 0, stderr
    assert stdout == ""
    assert "Task: multiclass" in stderr and "Training summary" in stderr
    assert "epoch 5/15" in stderr and "epoch 15/15" in stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["task"] == "multiclass"
    assert 0.5 < metrics["metrics"]["validation"]["accuracy"] <= 1.0
    provenance = metrics["provenance"]
    assert provenance["seed"] == 0 and len(provenance["inputs"][0]["sha256"]) == 64
    history = pd.read_csv(tmp_path / "h.csv")
    assert list(history["epoch"]) == list(range(1, 16))
    assert {"grad_norm_layer1", "grad_norm_output", "val_accuracy"} <= set(history.columns)
    split = pd.read_csv(tmp_path / "s.csv")
    assert list(split.columns) == ["sample_id", "set"]
    assert split["set"].value_counts().to_dict() == {"train": 480, "valid": 120}
    with np.load(out, allow_pickle=False) as archive:
        meta = json.loads(archive["__metadata__"].tobytes())
    assert meta["settings"]["train"]["epochs"] == 15
    assert meta["feature_columns"][:2] == ["batch", "GENE001"]


@pytest.mark.slow
def test_plain_progress_has_no_control_characters(tmp_path: Path) -> None:
    done = mlpcli(
        *TRAIN_EXPRESSION,
        "--out",
        str(tmp_path / "m.npz"),
        "--epochs",
        "3",
        "--log-every",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert not CONTROL & {ord(c) for c in done.stderr}
    assert done.stdout == ""


def test_quiet_prints_only_warnings(tmp_path: Path) -> None:
    code, _, stderr = run(
        "train",
        str(RESPONSE),
        "--target",
        "ic50",
        "--id",
        "cell_line",
        "--out",
        str(tmp_path / "m.npz"),
        "--epochs",
        "2",
        "--quiet",
    )
    assert code == 0
    assert stderr.strip().splitlines() == [
        "Warning: sample_data/drug_response.csv: dropped 5 row(s) whose target is missing.".replace(
            "sample_data/drug_response.csv", str(RESPONSE)
        )
    ]


def test_config_file_supplies_options_and_flags_override(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('hidden = "8"\nepochs = 4\n[training]\noptimizer = "sgd"\nlr = 0.05\n')
    out = tmp_path / "m.npz"
    code, _, stderr = run(
        *TRAIN_EXPRESSION,
        "--config",
        str(config),
        "--epochs",
        "3",
        "--out",
        str(out),
        "-q",
    )
    assert code == 0, stderr
    with np.load(out, allow_pickle=False) as archive:
        settings = json.loads(archive["__metadata__"].tobytes())["settings"]
    assert settings["model"]["hidden"] == [8]
    assert settings["train"]["optimizer"] == "sgd" and settings["train"]["lr"] == 0.05
    assert settings["train"]["epochs"] == 3  # the flag wins over the file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizer", "adamm"], "--optimizer got 'adamm'; choose one of: gd, sgd"),
        (["--hidden", "64,,0"], "--hidden takes positive layer sizes"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--epochs", "-3"], "--epochs must be >= 1"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--valid-fraction", "1.5"], "--valid-fraction must be >= 0 and < 1"),
        (["--optimizer", "rprop", "--batch-size", "16"], "full-batch method"),
        (["--residual", "--hidden", "64,32"], "--residual needs equal hidden widths"),
        (["--momentum", "0.5"], "--momentum does not apply to optimizer 'adam'"),
    ],
    ids=[
        "unknown-optimizer",
        "bad-hidden",
        "zero-lr",
        "negative-epochs",
        "zero-batch",
        "valid-fraction",
        "rprop-minibatch",
        "residual-widths",
        "foreign-hyperparameter",
    ],
)
def test_bad_options_exit_2_with_one_line_and_no_output(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "m.npz"
    code, _, stderr = run(
        *TRAIN_EXPRESSION,
        "--out",
        str(out),
        "--epochs",
        "2",
        "-q",
        *args,
    )
    assert code == 2, stderr
    assert message in stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_divergence_exits_5_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m.npz"
    code, _, stderr = run(
        "train",
        str(RESPONSE),
        "--target",
        "ic50",
        "--id",
        "cell_line",
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--scale",
        "none",
        "--out",
        str(out),
        "-q",
    )
    assert code == 5, stderr
    assert "diverged" in stderr and "--lr" in stderr
    assert list(tmp_path.iterdir()) == []


def test_failure_while_saving_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_savez(fh: object, **arrays: object) -> None:
        fh.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    out = tmp_path / "m.npz"
    code, _, stderr = run(
        *TRAIN_EXPRESSION,
        "--out",
        str(out),
        "--epochs",
        "2",
        "-q",
    )
    assert code == 2
    assert "no space left" in stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder_fails_before_training(tmp_path: Path) -> None:
    code, _, stderr = run(
        *TRAIN_EXPRESSION,
        "--out",
        str(tmp_path / "nope" / "m.npz"),
    )
    assert code == 2
    assert "does not exist" in stderr and "Training summary" not in stderr


@pytest.mark.slow
def test_same_seed_same_model_across_processes(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.npz"
        done = mlpcli(
            *TRAIN_EXPRESSION,
            "--epochs",
            "5",
            "--dropout",
            "0.1",
            "--seed",
            "7",
            "--out",
            str(out),
            "-q",
            "--metrics-out",
            str(tmp_path / f"{name}.json"),
        )
        assert done.returncode == 0, done.stderr
        outputs.append(out)
    with np.load(outputs[0]) as a, np.load(outputs[1]) as b:
        weights = [k for k in a.files if k.startswith("net.")]
        assert weights and all(np.array_equal(a[k], b[k]) for k in weights)
    metrics = [json.loads((tmp_path / f"{n}.json").read_text())["metrics"] for n in ("a", "b")]
    assert metrics[0] == metrics[1]


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    table = small_table(tmp_path / "d.csv")
    common = [
        "train",
        str(table),
        "--target",
        "label",
        "--id",
        "sample",
        "--patience",
        "off",
        "--dropout",
        "0.2",
        "--batchnorm",
        "--hidden",
        "8,8",
        "-q",
    ]
    assert run(*common, "--epochs", "9", "--out", str(tmp_path / "full.npz"))[0] == 0
    ckpt = tmp_path / "ckpt.npz"
    assert (
        run(
            *common,
            "--epochs",
            "4",
            "--out",
            str(tmp_path / "part.npz"),
            "--checkpoint",
            str(ckpt),
            "--checkpoint-every",
            "2",
        )[0]
        == 0
    )
    code, _, stderr = run(
        "train",
        str(table),
        "--resume",
        str(ckpt),
        "--epochs",
        "9",
        "-q",
        "--out",
        str(tmp_path / "resumed.npz"),
    )
    assert code == 0, stderr
    with np.load(tmp_path / "full.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        weights = [k for k in a.files if k.startswith("net.")]
        assert all(np.array_equal(a[k], b[k]) for k in weights)
    # A checkpoint is a usable model file of the best weights so far.
    code, _, stderr = run(
        "train",
        str(table),
        "--resume",
        str(tmp_path / "full.npz"),
        "--out",
        str(tmp_path / "x.npz"),
    )
    assert code == 4 and "not a checkpoint" in stderr


def _start_long_training(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 20))
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(20)])
    frame["y"] = X[:, 0] + rng.normal(size=20000)
    frame.to_csv(tmp_path / "big.csv", index=False)
    out = tmp_path / "out" / "m.npz"
    out.parent.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlpcli",
            "train",
            str(tmp_path / "big.csv"),
            "--target",
            "y",
            "--epochs",
            "100000",
            "--patience",
            "off",
            "--log-every",
            "1",
            "--out",
            str(out),
            *extra,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:  # wait until training runs
        if line.startswith("epoch 2/"):
            break
        assert time.monotonic() < deadline
    return proc, out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_stops_training_without_writing_a_model(
    tmp_path: Path, signum: int, code: int
) -> None:
    proc, out = _start_long_training(tmp_path)
    os.kill(proc.pid, signum)
    proc.communicate(timeout=60)
    assert proc.returncode == code
    assert list(out.parent.iterdir()) == []  # no model, no temporary file


@pytest.mark.slow
def test_save_on_interrupt_keeps_best_weights_marked_interrupted(tmp_path: Path) -> None:
    proc, out = _start_long_training(tmp_path, "--save-on-interrupt")
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert [p.name for p in out.parent.iterdir()] == ["m.npz"]
    with np.load(out, allow_pickle=False) as archive:
        meta = json.loads(archive["__metadata__"].tobytes())
        assert all(np.isfinite(archive[k]).all() for k in archive.files if k.startswith("net."))
    assert meta["training"]["interrupted"] is True
    assert meta["training"]["stop_reason"] == "interrupted"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trian"], "Error: No such command 'trian'. Did you mean 'train'? (see 'mlpcli --help')."),
        (
            ["train", str(EXPRESSION), "--target", "subtype", "--epoch", "3", "--out", "m.npz"],
            "Error: No such option: --epoch",
        ),
        (
            ["train", str(EXPRESSION), "--target", "subtype"],
            "Error: Missing option '--out' / '-o' (see 'mlpcli train --help').",
        ),
    ],
    ids=["unknown-command", "unknown-option", "missing-option"],
)
def test_click_usage_errors_are_one_line_with_exit_2(args: list[str], message: str) -> None:
    done = mlpcli(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1
    assert done.stdout == ""


@pytest.mark.slow
def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path: Path) -> None:
    done = mlpcli(
        "--debug", "train", str(EXPRESSION), "--target", "nope", "--out", str(tmp_path / "m.npz")
    )
    assert done.returncode == 3
    assert "Traceback" in done.stderr and "Error: Target column 'nope' not found" in done.stderr


def test_id_columns_keep_their_text(tmp_path: Path) -> None:
    table = small_table(tmp_path / "d.csv")
    frame = pd.read_csv(table)
    frame["sample"] = [f"{i:04d}" for i in range(len(frame))]
    frame.to_csv(table, index=False)
    code, _, stderr = run(
        "train",
        str(table),
        "--target",
        "label",
        "--id",
        "sample",
        "-q",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "m.npz"),
        "--split-out",
        str(tmp_path / "split.csv"),
    )
    assert code == 0, stderr
    assert (tmp_path / "split.csv").read_text().splitlines()[1].startswith("0000,")


def test_model_cannot_go_to_stdout(tmp_path: Path) -> None:
    code, _, stderr = run("train", str(EXPRESSION), "--target", "subtype", "--out", "-")
    assert code == 2 and "--out - (standard output) is not supported here" in stderr


def test_valid_file_is_the_validation_set(tmp_path: Path) -> None:
    train = small_table(tmp_path / "train.csv", n=150, seed=1)
    valid = small_table(tmp_path / "valid.csv", n=50, seed=2)
    code, _, stderr = run(
        "train",
        str(train),
        "--target",
        "label",
        "--id",
        "sample",
        "-q",
        "--valid-file",
        str(valid),
        "--epochs",
        "3",
        "--out",
        str(tmp_path / "m.npz"),
        "--split-out",
        str(tmp_path / "s.csv"),
        "--metrics-out",
        str(tmp_path / "m.json"),
    )
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert (metrics["training"]["n_train"], metrics["training"]["n_valid"]) == (150, 50)
    assert [i["path"] for i in metrics["provenance"]["inputs"]] == [str(train), str(valid)]
    split = pd.read_csv(tmp_path / "s.csv")
    assert split["set"].value_counts().to_dict() == {"train": 150, "valid": 50}
