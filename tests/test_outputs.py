"""outputs: no output replaces an input, a run writes all its outputs or none, temporaries of
dead runs are cleaned, and the provenance and JSON text every result carries."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpcli import __version__
from mlpcli.errors import OutputError
from mlpcli.outputs import (
    atomic_path,
    check_paths,
    provenance,
    remove_stale_temps,
    sha256_file,
    staged_outputs,
    to_json,
    write_text,
)


def test_an_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x\n1\n")
    link = tmp_path / "link.csv"
    os.link(data, link)  # a hard link: another name, the same file
    for name in (data, link):
        with pytest.raises(OutputError, match=r"is the same file as the input DATA"):
            check_paths({"DATA": str(data)}, {"--out": str(name)})
    assert data.read_text() == "x\n1\n"


def test_two_outputs_on_one_file_and_two_on_stdout_are_refused(tmp_path: Path) -> None:
    out = str(tmp_path / "p.csv")
    same = r"^--metrics-out '.*p\.csv' and --out '.*p\.csv' are the same file; give each output"
    with pytest.raises(OutputError, match=same):
        check_paths({}, {"--out": out, "--metrics-out": out})
    with pytest.raises(OutputError, match=r"--json and --out - both write to stdout"):
        check_paths({}, {"--json": "-", "--out": "-"}, stdout=["--json", "--out"])


def test_a_shared_pair_may_name_one_file(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.npz"
    ckpt.write_bytes(b"x")
    check_paths(
        {"--resume": str(ckpt)},
        {"--checkpoint": str(ckpt)},
        may_share=[("--checkpoint", "--resume")],
    )


def test_atomic_path_puts_the_file_in_place_only_when_the_block_succeeds(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temporary left
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp != out
        tmp.write_text("new")
    assert out.read_text() == "new"


def test_a_stage_commits_every_file_together_or_none(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    with staged_outputs():
        write_text(a, "A")
        assert not a.exists()  # staged: nothing in place before the end of the run
        write_text(b, "B")
    assert (a.read_text(), b.read_text()) == ("A", "B")
    with pytest.raises(KeyError), staged_outputs():
        write_text(tmp_path / "c.txt", "C")
        raise KeyError("the second output fails")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_atomic_path_keeps_the_mode_of_a_file_it_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "run.sh"
    out.write_text("old")
    out.chmod(0o750)
    write_text(out, "new")
    assert out.stat().st_mode & 0o777 == 0o750


def test_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    from mlpcli.outputs import _HOST  # the host part of a temporary's name

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".m.npz.mlpcli-{_HOST}-{dead}-ab12.tmp"
    live = tmp_path / f".m.npz.mlpcli-{_HOST}-{os.getpid()}-cd34.tmp"
    other = tmp_path / ".m.npz.notours.tmp"
    for path in (stale, live, other):
        path.write_text("x")
    assert remove_stale_temps(tmp_path, ".m.npz.mlpcli-") == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_sha256_file_and_provenance(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_bytes(b"a,b\n1,2\n")
    digest = sha256_file(data)
    assert digest == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    record = provenance(["mlpcli", "train"], {str(data): digest}, 7)
    assert record["command"] == ["mlpcli", "train"]
    assert record["mlpcli_version"] == __version__
    assert record["seed"] == 7
    assert record["inputs"] == [{"path": str(data), "sha256": digest}]
    assert {"numpy_version", "python_version"} <= set(record)


def test_to_json_is_stable_and_refuses_nan() -> None:
    text = to_json({"b": 1, "a": [0.5]})
    assert text == '{\n  "b": 1,\n  "a": [\n    0.5\n  ]\n}\n'
    assert json.loads(text) == {"b": 1, "a": [0.5]}
    with pytest.raises(ValueError):
        to_json({"auc": float("nan")})
