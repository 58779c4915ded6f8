"""The bad-input battery: each case gives a one-line message naming the file, column or option,
the documented exit code, and no output file."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import PickleMarker
from typer.testing import CliRunner

from mlpcli.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXPRESSION = ROOT / "sample_data" / "expression.csv"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    return result.exit_code, result.stderr


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


SMALL = "a,b,y\n" + "".join(f"{i},{i % 3},{'xz'[i % 2]}\n" for i in range(20))

# name -> (file content or a maker, extra options, exit code, text the message must contain)
TRAIN_CASES: dict[str, tuple[object, list[str], int, str]] = {
    "missing-file": (None, [], 3, "not found"),
    "directory": ("DIR", [], 3, "is a directory"),
    "empty-file": ("", [], 3, "is empty"),
    "header-only": ("a,b,y\n", [], 3, "has a header but no data rows"),
    "bad-encoding": (b"a,b,y\n1,2,\xff\xfe\n3,4,x\n", [], 3, "pass --encoding"),
    "wrong-delimiter": ("a;b;y\n1;2;x\n3;4;z\n", [], 3, "pass --sep ';'"),
    "missing-target": (SMALL, ["--target", "Y"], 3, "did you mean 'y'"),
    "constant-target": ("a,y\n1,x\n2,x\n3,x\n", [], 3, "single value 'x'"),
    "single-sample-class": (SMALL + "5,5,w\n", ["--strict"], 3, "a single sample ('w')"),
    "empty-target": ("a,y\n1,\n2,\n", [], 3, "has no values"),
    "target-is-id": (SMALL, ["--id", "y"], 2, "both as --target and as --id"),
    "all-missing-feature": (
        "a,b,y\n" + "".join(f",{i},{'xz'[i % 2]}\n" for i in range(9)),
        ["--strict"],  # without it: a warning, and the column is left out
        3,
        "1 column(s) in",
    ),
    "junk-in-numeric": (
        SMALL.replace("\n7,1,", "\n7,1x,", 1).replace("\n5,2,", "\n5,abc,"),
        ["--strict", "--drop", "a"],  # without --strict: a categorical column and a warning
        3,
        "Column 'b'",
    ),
    "infinite-value": (SMALL.replace("\n7,1,", "\n7,inf,", 1), [], 3, "infinite value"),
    "huge-value": (SMALL.replace("\n7,1,", "\n7,1e300,", 1), [], 3, "infinite value"),
    "duplicated-columns": ("a,a,y\n1,2,x\n3,4,z\n", [], 3, "duplicated column names: 'a'"),
    "duplicated-ids": (
        "id,a,y\ns1,1,x\ns1,2,z\ns2,3,x\ns3,4,z\n",
        ["--id", "id", "--strict"],  # without --strict: a warning
        3,
        "repeat 1 value(s) in 2 rows, e.g. 's1'",
    ),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES), ids=list(TRAIN_CASES))
def test_train_refuses_bad_input(tmp_path: Path, case: str) -> None:
    content, extra, code, text = TRAIN_CASES[case]
    data = tmp_path / "data.csv"
    if content == "DIR":
        data.mkdir()
    elif content is not None:
        write(data, content)  # type: ignore[arg-type]
    out = tmp_path / "out"
    out.mkdir()
    target = [] if "--target" in extra else ["--target", "y"]
    got, stderr = run(
        "train",
        str(data),
        *target,
        *extra,
        "--epochs",
        "2",
        "--out",
        str(out / "m.npz"),
        "--metrics-out",
        str(out / "m.json"),
    )
    assert got == code, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and text in errors[0]
    assert stderr.splitlines()[-1] == errors[0]  # only informational lines before it
    assert list(out.iterdir()) == []


def test_many_more_features_than_rows_is_only_a_warning(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    header = ",".join(f"g{i}" for i in range(50)) + ",y\n"
    rows = "".join(
        ",".join(f"{v:.3f}" for v in rng.normal(size=50)) + f",{'ab'[i % 2]}\n" for i in range(12)
    )
    data = write(tmp_path / "wide.csv", header + rows)
    got, stderr = run(
        "train", str(data), "--target", "y", "--epochs", "2", "-q", "--out", str(tmp_path / "m.npz")
    )
    assert got == 0
    assert "more features (50) than rows (12)" in stderr


@pytest.mark.parametrize(
    ("out", "text"),
    [("missing/m.npz", "does not exist"), ("/proc/m.npz", "not writable"), ("DIR", "is a folder")],
    ids=["missing-folder", "unwritable-folder", "folder-as-file"],
)
def test_unwritable_outputs_fail_before_training(tmp_path: Path, out: str, text: str) -> None:
    target = tmp_path if out == "DIR" else (tmp_path / out if not out.startswith("/") else out)
    got, stderr = run("train", str(EXPRESSION), "--target", "subtype", "--out", str(target))
    assert got == 2 and text in stderr
    assert "Training summary" not in stderr


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Path:
    return tiny_model


def _truncated(model: Path, path: Path) -> None:
    data = model.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pickled_array(model: Path, path: Path) -> None:
    with np.load(model) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["net.layer1.W"] = np.array([PickleMarker(path.parent / "marker")], dtype=object)
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


def _newer(model: Path, path: Path) -> None:
    import json

    with np.load(model) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["__metadata__"].tobytes())
    meta["format_version"] = 99
    arrays["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


def _tampered(model: Path, path: Path) -> None:
    with np.load(model) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["net.output.W"] = np.zeros((2, 2), np.float32)
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


MODEL_CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "truncated": (_truncated, "not a readable mlpcli model file"),
    "not-a-model": (lambda m, p: write(p, "a,b\n1,2\n") and None, "not a zip archive"),
    "plain-pickle": (
        lambda m, p: write(p, pickle.dumps(PickleMarker(p.parent / "marker"))) and None,
        "not a zip archive",
    ),
    "pickled-array": (_pickled_array, "pickle"),
    "newer-version": (_newer, "newer than this mlpcli"),
    "tampered": (_tampered, "damaged or inconsistent"),
}


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("case", list(MODEL_CASES), ids=list(MODEL_CASES))
def test_bad_model_files_exit_4_and_never_run_code(
    tmp_path: Path, model: Path, command: str, case: str
) -> None:
    make, text = MODEL_CASES[case]
    bad = tmp_path / "bad.npz"
    make(model, bad)
    out = tmp_path / "out.csv"
    got, stderr = run(command, str(bad), str(EXPRESSION), "--out", str(out))
    assert got == 4, stderr
    assert text in stderr and stderr.count("\n") == 1
    assert not out.exists()
    assert not (tmp_path / "marker").exists()


def _same_file(data: Path, tmp: Path) -> list[str]:
    return ["--out", str(data)]


def _hard_link(data: Path, tmp: Path) -> list[str]:
    os.link(data, tmp / "link.csv")
    return ["--out", str(tmp / "link.csv")]


def _symlink(data: Path, tmp: Path) -> list[str]:
    (tmp / "link.csv").symlink_to(data)
    return ["--out", str(tmp / "link.csv")]


def _two_outputs(data: Path, tmp: Path) -> list[str]:
    return [
        "--out",
        str(tmp / "m.npz"),
        "--metrics-out",
        str(tmp / "x"),
        "--split-out",
        str(tmp / "x"),
    ]


OUTPUT_CASES: dict[str, tuple[Callable[[Path, Path], list[str]], str]] = {
    "output-is-the-input": (_same_file, "is the same file as the input DATA"),
    "output-hard-links-the-input": (_hard_link, "is the same file as the input DATA"),
    "output-symlinks-the-input": (_symlink, "is the same file as the input DATA"),
    "two-outputs-one-file": (_two_outputs, "are the same file"),
}


@pytest.mark.parametrize("case", list(OUTPUT_CASES), ids=list(OUTPUT_CASES))
def test_outputs_that_would_destroy_a_file_are_refused(tmp_path: Path, case: str) -> None:
    make, text = OUTPUT_CASES[case]
    data = write(tmp_path / "data.csv", SMALL)
    before = sorted(p.name for p in tmp_path.iterdir())
    extra = make(data, tmp_path)
    listed = sorted(p.name for p in tmp_path.iterdir())
    got, stderr = run("train", str(data), "--target", "y", "--epochs", "2", *extra)
    assert got == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and text in errors[0]
    assert data.read_text(encoding="utf-8") == SMALL
    assert sorted(p.name for p in tmp_path.iterdir()) == listed and "data.csv" in before
