"""Messages only suggest options the command has (issue 15).

`predict`, `evaluate` and `explain` read a table with the model's stored reading options and
have no training options, so a message that would tell `train` to pass `--encoding`, `--log1p`,
`--numeric`, `--sheet` or `--na-values` says what to do with the file instead. This walks the
warnings and errors a run of each can give on bad tables (one model trained with those options)
and checks that every `--option` they name is one of that command's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer.main
from typer.testing import CliRunner

from mlpcli.cli import app
from mlpcli.cli.common import options_of

pytestmark = pytest.mark.usefixtures("plain_terminal")

COMMANDS = ("predict", "evaluate", "explain")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
#: An option named with its command ("train --split-out lists which rows trained") is not a
#: suggestion for this one.
OTHER_COMMAND = re.compile(r"\b(?:train|cv|tune|split|export) (?:--[a-z][a-z0-9-]*[ =]?\S* ?)+")


def command_options(name: str) -> set[str]:
    group = typer.main.get_command(app)
    return options_of(group.commands[name], [group])  # type: ignore[attr-defined]


def table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Positive measurements (for --log1p), a numeric grade, a batch and a binary status."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 5.0, size=(n, 2)).round(3)
    return pd.DataFrame(
        {
            "sample_id": [f"S{i:03d}" for i in range(n)],
            "x1": x[:, 0],
            "x2": x[:, 1],
            "grade": [str(9 + i % 4) for i in range(n)],
            "batch": [f"b{1 + i % 2}" for i in range(n)],
            "status": np.where(x[:, 0] > x[:, 1], "case", "ctrl"),
        }
    )


def _text_in_numbers(path: Path) -> Path:
    frame = table(8).astype({"x1": object})
    frame.loc[2, "x1"] = "oops"
    frame.to_csv(path, index=False)
    return path


def _missing_feature(path: Path) -> Path:
    table(8).drop(columns=["x2"]).to_csv(path, index=False)
    return path


def _latin1(path: Path) -> Path:
    frame = table(8)
    frame.loc[3, "batch"] = "b\u00e9"
    path.write_bytes(frame.to_csv(index=False).encode("latin-1"))
    return path


def _utf16(path: Path) -> Path:
    path.write_bytes(table(8).to_csv(index=False).encode("utf-16"))
    return path


def _semicolons(path: Path) -> Path:
    table(8).to_csv(path, sep=";", index=False)
    return path


def _unseen_level(path: Path) -> Path:
    table(8).assign(batch=["b9"] * 8).to_csv(path, index=False)
    return path


def _junk_grade(path: Path) -> Path:
    table(8).assign(grade=["other"] * 8).to_csv(path, index=False)
    return path


def _negative(path: Path) -> Path:
    frame = table(8)
    frame.loc[1, "x1"] = -2.0
    frame.to_csv(path, index=False)
    return path


def _transposed(path: Path) -> Path:
    table(8).set_index("sample_id").T.to_csv(path, index_label="feature")
    return path


def _header_only(path: Path) -> Path:
    path.write_text(",".join(table(1).columns) + "\n")
    return path


def _infinite(path: Path) -> Path:
    frame = table(8)
    frame.loc[4, "x2"] = np.inf
    frame.to_csv(path, index=False)
    return path


def _no_ids(path: Path) -> Path:
    table(8).drop(columns=["sample_id"]).to_csv(path, index=False)
    return path


def _missing_target(path: Path) -> Path:
    frame = table(8).astype({"status": object})
    frame.loc[0, "status"] = None
    frame.to_csv(path, index=False)
    return path


def _no_sheet(path: Path) -> Path:
    path = path.with_suffix(".xlsx")
    table(8).to_excel(path, sheet_name="other", index=False)
    return path


#: name -> a bad table for the CSV model (or, for `_no_sheet`, the Excel one).
TABLES: dict[str, Callable[[Path], Path]] = {
    f.__name__.strip("_"): f
    for f in (
        _text_in_numbers,
        _missing_feature,
        _latin1,
        _utf16,
        _semicolons,
        _unseen_level,
        _junk_grade,
        _negative,
        _transposed,
        _header_only,
        _infinite,
        _no_ids,
        _missing_target,
        _no_sheet,
    )
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CSV model trained with --log1p, --numeric and --id, and an Excel one with --sheet."""
    pytest.importorskip("openpyxl", reason='the excel extra is missing: pip install ".[excel]"')
    folder = tmp_path_factory.mktemp("suggestions")
    train = table()
    train.to_csv(folder / "train.csv", index=False)
    train.to_excel(folder / "train.xlsx", sheet_name="cohort", index=False)
    common = ["--target", "status", "--epochs", "2", "--hidden", "4", "-q"]
    out = {}
    for name, args in {
        "csv": [folder / "train.csv", "--log1p", "--numeric", "grade", "--id", "sample_id"],
        "xlsx": [folder / "train.xlsx", "--sheet", "cohort", "--id", "sample_id"],
    }.items():
        out[name] = folder / f"{name}.npz"
        result = CliRunner().invoke(
            app, ["train", *map(str, args), *common, "--out", str(out[name])]
        )
        assert result.exit_code == 0, result.stderr
    return out


@pytest.mark.parametrize("case", list(TABLES), ids=str)
def test_messages_name_only_options_the_command_has(
    models: dict[str, Path], tmp_path: Path, case: str
) -> None:
    path = TABLES[case](tmp_path / f"{case}.csv")
    model = models["xlsx" if path.suffix == ".xlsx" else "csv"]
    shown = 0
    for command in COMMANDS:
        result = CliRunner().invoke(app, [command, str(model), str(path)])
        messages = [
            line for line in result.stderr.splitlines() if line.startswith(("Error: ", "Warning: "))
        ]
        shown += len(messages)
        allowed = command_options(command)
        for message in messages:
            named = set(OPTION.findall(OTHER_COMMAND.sub("", message)))
            assert named <= allowed, (command, sorted(named - allowed), message)
    assert shown, f"no warning or error for '{case}': the case tests nothing"


def test_a_train_run_still_suggests_its_own_options(tmp_path: Path) -> None:
    """The same problem under `train` names the option that changes the decision."""
    path = _latin1(tmp_path / "d.csv")
    out = str(tmp_path / "m.npz")
    result = CliRunner().invoke(app, ["train", str(path), "--target", "status", "--out", out])
    assert result.exit_code == 3
    assert "pass --encoding latin-1 (or the file's real encoding)." in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_predict_says_how_to_convert_a_file_in_another_encoding(
    models: dict[str, Path], tmp_path: Path, command: str
) -> None:
    path = _latin1(tmp_path / "d.csv")
    result = CliRunner().invoke(app, [command, str(models["csv"]), str(path)])
    assert result.exit_code == 3
    assert result.stderr.endswith(
        "convert it to the encoding the model's training table had (e.g. iconv -f latin-1 -t "
        "utf-8 for UTF-8).\n"
    )
