"""Property-based fuzzing: random small tables through read -> preprocess -> train -> predict.

Whatever the table holds (mixed column types, missing cells, odd strings, unicode headers,
repeated values), the pipeline either works or fails with an `MlpcliError` carrying a message:
never another exception.
"""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlpcli import config, pipeline, prepare, trained
from mlpcli.cli import app
from mlpcli.errors import MlpcliError

#: End to end (a fuzzed end-to-end pipeline): deselected by `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8
).filter(lambda s: s.strip() == s and s.strip())
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.integers(-5, 5).map(str),
    st.sampled_from(["", "NA", "?", ".", "nan", "abc", "x", "y", "1e400", "-0", "Ünï", " ", ";"]),
    st.text(max_size=5),
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    n_cols = draw(st.integers(2, 5))
    header = draw(st.lists(NAMES, min_size=n_cols, max_size=n_cols, unique=True))
    n_rows = draw(st.integers(0, 40))
    # The first column is the target: mostly clean, so most examples get as far as training.
    kinds = [
        draw(st.sampled_from(["num", "cat", "cat", "any"])),
        *draw(
            st.lists(
                st.sampled_from(["num", "cat", "any", "repeat"]),
                min_size=n_cols - 1,
                max_size=n_cols - 1,
            )
        ),
    ]
    rows = []
    for _ in range(n_rows):
        row = []
        for kind in kinds:
            if kind == "num":
                row.append(draw(st.one_of(st.floats(-1e3, 1e3).map(str), st.just(""))))
            elif kind == "cat":
                row.append(draw(st.sampled_from(["a", "b", "c", ""])))
            elif kind == "repeat":
                row.append("7")
            else:
                row.append(draw(CELLS))
        rows.append(row)
    return header, rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), task=st.sampled_from(["auto", "auto", "regression"]))
def test_pipeline_never_raises_anything_but_mlpcli_errors(
    table: tuple[list[str], list[list[str]]], task: str
) -> None:
    header, rows = table
    target = header[0]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        settings_ = config.resolve(
            {
                "target": [target],
                "task": task,
                "epochs": 1,
                "hidden": "4",
                "batch_size": 8,
                "valid_fraction": 0.25,
            }
        )
        try:
            outcome = pipeline.train(str(path), settings_, command=["fuzz"])
            model_path = Path(folder) / "m.npz"
            pipeline.write_outputs(outcome, str(model_path))
            model = trained.load_trained(model_path)
            frame = prepare.read(str(path), settings_).frame
            outputs = model.predict_outputs(frame)
        except MlpcliError as exc:
            event(f"refused: {type(exc).__name__}")
            message = str(exc)
            assert message and "\n" not in message and "Traceback" not in message
            assert not (Path(folder) / "m.npz").exists() or exc.exit_code != 2
            return
        event("trained and predicted")
        assert outputs.shape == (len(frame), model.net.architecture.n_outputs)
        assert all(math.isfinite(v) for v in np.asarray(outputs, dtype=float).ravel())


@given(st.text(max_size=60), st.booleans())
@settings(max_examples=300, deadline=None)
def test_printable_leaves_no_character_a_terminal_acts_on(text: str, multiline: bool) -> None:
    import unicodedata

    from mlpcli.errors import printable

    shown = printable(text, multiline)
    kept = {"\n", "\t"} if multiline else set()
    assert not [
        c
        for c in shown
        if c not in kept
        and (
            unicodedata.category(c) == "Cc"
            or 0x202A <= ord(c) <= 0x202E
            or 0x2066 <= ord(c) <= 0x2069
        )
    ]
    if text.isprintable():
        assert shown == text  # ordinary names are shown as they are


@given(st.lists(st.sampled_from(["same", "dot", "link", "hard"]), min_size=1, max_size=3))
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_every_alias_of_an_input_is_refused_as_an_output(aliases: list[str]) -> None:
    import os

    from mlpcli.errors import OutputError
    from mlpcli.outputs import check_paths

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data.csv"
        data.write_text("a,y\n1,x\n")
        path = data
        for i, kind in enumerate(aliases):
            nxt = Path(folder) / f"alias{i}.csv"
            if kind == "dot":
                nxt = path.parent / "." / path.name
            elif kind == "link":
                nxt.symlink_to(path)
            elif kind == "hard":
                os.link(path, nxt)
            path = nxt if kind != "same" else path
        with pytest.raises(OutputError, match="is the same file as the input DATA"):
            check_paths({"DATA": str(data)}, {"--out": str(path)})
        assert data.read_text() == "a,y\n1,x\n"


# --- model-file metadata and arrays (issue 12) --------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
WRONG_VALUES = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([2**63, -(2**40), 2_000_000_000]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(0, 3), st.text(max_size=2), st.none()), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2),
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every key path in a JSON document (lists: their first two items)."""
    found: list[tuple[object, ...]] = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:2]):
            found += _paths(value, (*prefix, i))
    return found


@pytest.fixture(scope="module")
def fuzz_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, object]]:
    import json

    folder = tmp_path_factory.mktemp("fuzz-model")
    lines = (ROOT / "sample_data" / "expression.csv").read_text().splitlines()[:61]
    data = folder / "small.csv"
    data.write_text("\n".join(lines) + "\n")
    model = folder / "m.npz"
    result = CliRunner().invoke(
        app,
        [
            *("train", str(data), "--target", "subtype", "--id", "sample_id"),
            *("--epochs", "2", "--hidden", "4", "--out", str(model), "-q"),
        ],
    )
    assert result.exit_code == 0, result.output
    with np.load(model) as archive:
        meta = json.loads(archive["__metadata__"].tobytes())
    return data, model, meta


def _write_model(source: Path, target: Path, meta: object, arrays: dict[str, np.ndarray]) -> None:
    import json

    with np.load(source) as archive:
        stored = {k: archive[k] for k in archive.files if k != "__metadata__"}
    stored.update(arrays)
    payload = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with target.open("wb") as fh:
        np.savez(fh, **stored, __metadata__=payload)


def _commands(model: Path, data: Path, out: Path) -> dict[str, list[str]]:
    return {
        "predict": ["predict", str(model), str(data), "--out", str(out / "p.csv")],
        "evaluate": ["evaluate", str(model), str(data), "--out", str(out / "e.json")],
        "inspect": ["inspect", str(model), "--json"],
        "explain": [
            "explain",
            str(model),
            str(data),
            "--repeats",
            "1",
            "--out",
            str(out / "x.csv"),
        ],
    }


def _assert_clean_outcome(result: object, out: Path) -> None:
    code = result.exit_code  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert code in (0, 3, 4), (code, stderr, result.exception)  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    if code:  # warnings (NOT A TEST ...) may come first; then exactly one error line
        errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and stderr.splitlines()[-1] == errors[0], stderr
        assert list(out.iterdir()) == []


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    choice=st.data(),
    value=WRONG_VALUES,
    command=st.sampled_from(["predict", "evaluate", "inspect", "explain"]),
)
def test_wrong_typed_metadata_never_gives_an_internal_error(
    fuzz_model: tuple[Path, Path, dict[str, object]],
    choice: st.DataObject,
    value: object,
    command: str,
) -> None:
    import copy

    data, model, meta = fuzz_model
    path = choice.draw(st.sampled_from(_paths(meta)), label="field")
    changed = copy.deepcopy(meta)
    node: object = changed
    for key in path[:-1]:
        node = node[key]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    with tempfile.TemporaryDirectory() as folder:
        bad = Path(folder) / "bad.npz"
        _write_model(model, bad, changed, {})
        out = Path(folder) / "out"
        out.mkdir()
        result = CliRunner().invoke(app, _commands(bad, data, out)[command])
        event(f"exit {result.exit_code}")
        _assert_clean_outcome(result, out)


ARRAY_VALUES = st.sampled_from(
    [
        np.array([np.nan]),
        np.array([[np.inf, 1.0]]),
        np.zeros((2, 2), np.complex64),
        np.zeros(3, "datetime64[D]"),
        np.zeros(3, "timedelta64[s]"),
        np.zeros(2, [("a", "<f4"), ("b", "<i4")]),
        np.array(["x", "y"]),
        np.zeros((0,)),
        np.zeros((4, 4, 4), np.float32),
        np.ones(5, np.int8),
        np.ones(1, bool),
        np.float64(3.0),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(choice=st.data(), array=ARRAY_VALUES, command=st.sampled_from(["predict", "inspect"]))
def test_hostile_arrays_never_give_an_internal_error(
    fuzz_model: tuple[Path, Path, dict[str, object]],
    choice: st.DataObject,
    array: np.ndarray,
    command: str,
) -> None:
    data, model, meta = fuzz_model
    with np.load(model) as archive:
        names = sorted(k for k in archive.files if k != "__metadata__")
    name = choice.draw(st.sampled_from([*names, "junk"]), label="array")
    with tempfile.TemporaryDirectory() as folder:
        bad = Path(folder) / "bad.npz"
        _write_model(model, bad, meta, {name: array})
        out = Path(folder) / "out"
        out.mkdir()
        result = CliRunner().invoke(app, _commands(bad, data, out)[command])
        event(f"exit {result.exit_code}")
        _assert_clean_outcome(result, out)
        if name != "junk":
            assert result.exit_code == 4, result.stderr
            assert f"array '{name}'" in result.stderr


@pytest.mark.parametrize("command", ["predict", "evaluate", "explain"])
@pytest.mark.parametrize(("field", "value"), [("layer", 0), ("layer", "counts"), ("sheet", "S1")])
def test_a_stored_sheet_or_layer_does_not_stop_reading_a_csv(
    fuzz_model: tuple[Path, Path, dict[str, object]],
    tmp_path: Path,
    command: str,
    field: str,
    value: object,
) -> None:
    """The case hypothesis found: --layer 0 stored in a CSV-trained model made explain refuse the
    CSV with a usage error (exit 2). The stored --sheet/--layer say how an Excel/AnnData training
    file was read; they do not apply to a CSV, so every command reads it as predict does."""
    import copy

    data, model, meta = fuzz_model
    changed = copy.deepcopy(meta)
    changed["settings"]["data"][field] = value  # type: ignore[index]
    bad = tmp_path / "m.npz"
    _write_model(model, bad, changed, {})
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, _commands(bad, data, out)[command])
    assert result.exit_code == 0, result.stderr
