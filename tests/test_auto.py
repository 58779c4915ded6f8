"""`--preset auto`: each candidate trains exactly as its own preset would (`train`: on its own
preprocessing; the Python API: on shared arrays), and the recipe replaces classic only where
its paired per-row gain on the validation rows exceeds `auto.Z` standard errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli import auto, config, describe, modelfile
from mlpcli import task as tasks
from mlpcli.errors import UsageError
from mlpcli.pipeline import train, train_frame, write_outputs

pytestmark = pytest.mark.usefixtures("plain_terminal")

#: Small enough for both candidates to train in well under a second.
TINY = {"hidden": "8", "epochs": 4, "batch_size": 16}


def _table(n: int = 80, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["y"] = np.where(X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    return frame


def _train(frame: pd.DataFrame, **values: object):  # type: ignore[no-untyped-def]
    return train_frame(frame, config.resolve({"target": "y", "seed": 2, **values}))


def test_candidate_settings_are_each_presets_with_the_options_given() -> None:
    s = config.resolve({"preset": "auto", "epochs": 7, "dropout": 0.1})
    recipe = auto.candidate_settings(s, "realmlp_td")
    classic = auto.candidate_settings(s, "classic")
    # the recipe candidate is an ensemble of 5 members of the ensemble width; classic is one
    assert (recipe.model.preset, recipe.model.hidden, recipe.train.optimizer) == (
        "realmlp_td",
        (128, 128, 128),
        "adamw",
    )
    assert recipe.model.ensemble == 5
    assert (classic.model.preset, classic.model.hidden, classic.train.optimizer) == (
        "classic",
        (64, 32),
        "adam",
    )
    assert classic.model.ensemble == 1
    # --ensemble 1: the recipe is one network of its own width (auto as before the ensemble)
    single = config.resolve({"preset": "auto", "ensemble": 1})
    assert auto.candidate_settings(single, "realmlp_td").model.hidden == (256, 256, 256)
    assert auto.candidate_settings(single, "realmlp_td").model.ensemble == 1
    # and the lecture's MLP is the same whether the recipe has one member or five
    five = config.resolve({"preset": "auto"})
    assert auto.candidate_settings(single, "classic") == auto.candidate_settings(five, "classic")
    for candidate in (recipe, classic):  # given options apply to both; preprocessing shared
        assert (candidate.train.epochs, candidate.model.dropout) == (7, 0.1)
        assert candidate.preprocess == s.preprocess
        assert (candidate.preprocess.scale, candidate.preprocess.clip) == ("robust_range", "smooth")
    # --ensemble without --hidden: the recipe's members have its ensemble width; --hidden wins
    members = config.resolve({"preset": "auto", "ensemble": 3})
    assert auto.candidate_settings(members, "realmlp_td").model.hidden == (128, 128, 128)
    members = members.replace(hidden="256,256,256")
    assert auto.candidate_settings(members, "realmlp_td").model.hidden == (256, 256, 256)


def test_each_candidate_is_its_presets_model_and_the_better_one_is_kept() -> None:
    frame = _table()
    chosen = _train(frame, preset="auto", **TINY)
    choice = chosen.metadata["auto"]
    assert choice["metric"] == "accuracy" and set(choice["scores"]) == set(auto.CANDIDATES)
    shared = {"scale": "robust_range", "clip": "smooth"}
    alone = {name: _train(frame, preset=name, **shared, **TINY) for name in auto.CANDIDATES}
    for name, outcome in alone.items():  # the score auto saw is the standalone model's
        assert choice["scores"][name] == outcome.metrics["validation"]["accuracy"]
    g, se = choice["gains"]["realmlp_td"]  # row accuracy: the gain is the scores' difference
    assert g == pytest.approx(choice["scores"]["realmlp_td"] - choice["scores"]["classic"])
    best = "realmlp_td" if g > max(auto.Z * se, 0.0) else "classic"
    assert choice["chosen"] == best
    winner = alone[best]
    assert set(chosen.arrays) == set(winner.arrays)
    for name, array in winner.arrays.items():  # bit for bit the winner's own run
        assert array.tobytes() == chosen.arrays[name].tobytes(), name
    assert chosen.settings.model.preset == best
    assert chosen.metadata["settings"]["model"]["preset"] == best


SCORED = {"classic": 0.80, "realmlp_td": 0.85}


@pytest.mark.parametrize(
    ("scores", "gains", "expected"),
    [
        (SCORED, {"realmlp_td": (0.05, 0.01)}, "realmlp_td"),  # 5 standard errors
        (SCORED, {"realmlp_td": (0.05, 0.03)}, "classic"),  # 1.7: within the noise
        (SCORED, {"realmlp_td": (0.0, 0.0)}, "classic"),  # a tie: the earlier
        (SCORED, {"realmlp_td": (-0.05, 0.01)}, "classic"),  # worse
        (SCORED, {"realmlp_td": (0.01, 0.0)}, "realmlp_td"),  # better on every row that differs
        ({"classic": None, "realmlp_td": 0.10}, {}, "realmlp_td"),  # undefined loses
        ({"classic": None, "realmlp_td": None}, {}, "classic"),  # nothing scored: the first
    ],
    ids=["clear-gain", "within-noise", "tie", "worse", "no-spread", "undefined", "unscored"],
)
def test_the_rule_by_hand(
    scores: dict[str, float | None], gains: dict[str, tuple[float, float]], expected: str
) -> None:
    assert auto._best(scores, dict.fromkeys(scores), gains) == expected


def test_the_paired_gain_by_hand() -> None:
    # d = other - first = [1, 1, 0, 0]: mean 0.5, sd (ddof 1) sqrt(1/3), se sqrt(1/3)/2
    assert auto.gain(np.array([0, 0, 1, 1]), np.array([1, 1, 1, 1])) == pytest.approx(
        (0.5, np.sqrt(1 / 3) / 2)
    )
    assert auto.gain(np.array([1.0]), np.array([0.0])) == (-1.0, 0.0)  # one row: no spread


def test_the_row_terms_average_to_each_tasks_metric() -> None:
    rng = np.random.default_rng(0)
    Y, P = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    r2 = tasks.get("regression").epoch_score(Y, P)
    assert 1 + auto.ROW_TERMS["regression"]("regression", Y, P).mean() == pytest.approx(r2)
    Y, P = np.eye(3)[rng.integers(0, 3, 40)], rng.dirichlet(np.ones(3), 40)
    accuracy = tasks.get("multiclass").epoch_score(Y, P)
    assert auto.ROW_TERMS["multiclass"]("multiclass", Y, P).mean() == pytest.approx(accuracy)


@pytest.mark.parametrize("name", auto.CANDIDATES)
def test_train_gives_each_candidate_its_presets_own_model(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train` prepares each candidate with its own preset's preprocessing: the model auto
    keeps is bit for bit `--preset <name>`'s (classic: standard scaling, no clip)."""
    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    monkeypatch.setattr(auto, "_best", lambda scores, fitted, gains: name)
    values = {"target": "y", "seed": 2, **TINY}
    chosen = train(str(path), config.resolve({"preset": "auto", **values}))
    own = {"ensemble": 5} if name == "realmlp_td" else {}  # auto's recipe: 5 members
    alone = train(str(path), config.resolve({"preset": name, **values, **own}))
    assert chosen.metadata["auto"]["chosen"] == name
    assert chosen.settings == alone.settings
    assert set(chosen.arrays) == set(alone.arrays)
    for key, array in alone.arrays.items():
        assert array.tobytes() == chosen.arrays[key].tobytes(), key


@pytest.mark.parametrize(
    ("values", "alone", "reason"),
    [
        ({"ensemble": 2}, "realmlp_td", "--ensemble applies to the recipe"),
        ({"batchnorm": True}, "classic", "--batchnorm applies to --preset classic"),
    ],
    ids=["ensemble-needs-the-recipe", "batchnorm-needs-classic"],
)
def test_a_candidate_the_options_do_not_apply_to_is_left_out(
    values: dict[str, object], alone: str, reason: str
) -> None:
    choice = _train(_table(), preset="auto", **TINY, **values).metadata["auto"]
    assert choice["chosen"] == alone
    (other,) = set(auto.CANDIDATES) - {alone}
    assert choice["scores"][other] is None and reason in choice["notes"][other]


def test_options_no_candidate_takes_are_the_first_candidates_error() -> None:
    with pytest.raises(UsageError, match="--ensemble applies to the recipe"):
        _train(_table(), preset="auto", **TINY, ensemble=2, batchnorm=True)


def test_without_validation_rows_the_first_candidate_trains_alone() -> None:
    choice = _train(_table(), preset="auto", **TINY, valid_fraction=0).metadata["auto"]
    assert choice["chosen"] == "classic" and choice["scores"]["realmlp_td"] is None
    assert choice["notes"]["realmlp_td"] == "not trained: no validation rows to choose on"


def test_inspect_shows_the_choice(runner: object, tmp_path: Path) -> None:
    from mlpcli.cli import app

    outcome = _train(_table(), preset="auto", **TINY)
    out = tmp_path / "m.npz"
    write_outputs(outcome, str(out))
    meta = modelfile.read_metadata(out)
    winner = meta["auto"]["chosen"]
    assert describe.preset_name(meta) == f"auto -> {winner}"
    shown = runner.invoke(app, ["inspect", str(out)])  # type: ignore[attr-defined]
    assert shown.exit_code == 0, shown.output
    assert f"auto -> {winner}" in shown.output
    assert f"{winner} {meta['auto']['scores'][winner]:.4f} (chosen)" in shown.output
    # the HTML report says the same
    from mlpcli.report import _architecture_section

    assert "auto choice" in _architecture_section(meta)
    assert describe.auto_choice(meta["auto"]).split(":")[0] in _architecture_section(meta)


def test_inspect_shows_a_recipe_models_own_schedules(runner: object, tmp_path: Path) -> None:
    """A recipe model trains on its own schedules: inspect lists them, not the lecture's MLP's
    `--schedule` it never used."""
    from mlpcli.cli import app

    out = tmp_path / "r.npz"
    write_outputs(_train(_table(), preset="realmlp_td", **TINY), str(out))
    shown = runner.invoke(app, ["inspect", str(out)])  # type: ignore[attr-defined]
    assert shown.exit_code == 0, shown.output
    assert "coslog4" in shown.output and "lr_schedule" in shown.output
    names = {line.split("│")[1].strip() for line in shown.output.splitlines() if "│" in line}
    assert "lr_schedule" in names and "schedule" not in names


def test_checkpoints_need_one_network(tmp_path: Path) -> None:
    from mlpcli.pipeline import train

    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    settings = config.resolve({"target": "y", "preset": "auto", **TINY})
    with pytest.raises(UsageError, match="--preset auto trains two"):
        train(str(path), settings, checkpoint=str(tmp_path / "c.npz"))


def test_the_default_preset_is_laid_over_the_options_own_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLPCLI_PRESET")  # tests/conftest.py pins classic for the suite
    assert config.DEFAULT_PRESET == "auto"
    s = config.resolve({"epochs": 9})
    assert (s.model.preset, s.preprocess.scale, s.preprocess.clip, s.train.epochs) == (
        "auto",
        "robust_range",
        "smooth",
        9,
    )
    assert s.model.ensemble == 5 and config.resolve({"ensemble": 1}).model.ensemble == 1
    # one flag away: --preset classic is the options' own defaults, exactly
    assert config.resolve({"preset": "classic"}) == config.Settings()
    assert config.resolve({"preset": "realmlp_td"}).model.hidden == (256, 256, 256)
    # a given base (a checkpoint's settings, `Settings.replace`) keeps its own preset
    assert config.Settings().replace(epochs=3).model.preset == "classic"


def test_above_the_row_limit_only_classic_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto, "MAX_RECIPE_ROWS", 50)  # the table has 64 training rows
    choice = _train(_table(), preset="auto", **TINY).metadata["auto"]
    assert choice["chosen"] == "classic" and choice["scores"]["realmlp_td"] is None
    assert "left out above 50 training rows" in choice["notes"]["realmlp_td"]


def test_mlpcli_preset_names_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPCLI_PRESET", "realmlp_td")
    assert config.resolve({}).model.preset == "realmlp_td"
    assert config.resolve({"preset": "auto"}).model.preset == "auto"  # a flag wins
    monkeypatch.setenv("MLPCLI_PRESET", "fancy")
    with pytest.raises(UsageError, match=r"\$MLPCLI_PRESET='fancy' is not a preset"):
        config.resolve({})


def test_out_of_core_auto_is_classic_with_its_own_preprocessing() -> None:
    s = config.resolve({"preset": "auto", "epochs": 5, "impute": "mean"})
    classic = auto.out_of_core_settings(s)
    assert classic.model.preset == "classic" and classic.train.epochs == 5
    assert (classic.preprocess.scale, classic.preprocess.clip) == ("standard", "none")
    assert classic.preprocess.impute == "mean"  # a given option still applies


def test_each_candidate_starts_its_own_progress_count(tmp_path: Path) -> None:
    """`train` tells `on_start` about each candidate before it trains, with that candidate's
    own epoch limit (the recipe's 256 beside the lecture's MLP's 200) and its own arrays."""
    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    started: list[dict[str, object]] = []
    settings = config.resolve({"target": "y", "preset": "auto", "hidden": "8", "batch_size": 16})
    train(str(path), settings, on_start=started.append)
    assert [(s["candidate"], s["epochs"]) for s in started] == [
        ("classic", 200),
        ("realmlp_td", 256),
    ]
    assert all(s["n_train"] == 64 for s in started)


def test_calibrate_makes_autos_recipe_one_network() -> None:
    """One temperature rescales one network's logits: with --calibrate and no --ensemble the
    recipe candidate is one network; an --ensemble given stays (and is refused later)."""
    calibrated = config.resolve({"preset": "auto", "calibrate": True})
    assert auto.candidate_settings(calibrated, "realmlp_td").model.ensemble == 1
    assert auto.candidate_settings(calibrated, "classic").train.calibrate
    both = config.resolve({"preset": "auto", "calibrate": True, "ensemble": 3})
    assert auto.candidate_settings(both, "realmlp_td").model.ensemble == 3


def test_default_auto_with_calibrate_trains_and_calibrates() -> None:
    model = _train(_table(), preset="auto", calibrate=True, **TINY)
    assert model.metadata["auto"]["scores"]["realmlp_td"] is not None
    assert "calibration" in model.metadata


def test_metrics_out_records_autos_choice(tmp_path: Path) -> None:
    import json

    outcome = _train(_table(), preset="auto", **TINY)
    write_outputs(outcome, str(tmp_path / "m.npz"), metrics_out=str(tmp_path / "m.json"))
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["auto"] == json.loads(json.dumps(outcome.metadata["auto"]))
    assert doc["auto"]["chosen"] in auto.CANDIDATES and set(doc["auto"]["scores"]) == set(
        auto.CANDIDATES
    )


def test_a_candidate_left_out_gets_no_progress_count(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    started: list[dict[str, object]] = []
    values = {"target": "y", "preset": "auto", "ensemble": 2, **TINY}
    train(str(path), config.resolve(values), on_start=started.append)
    assert [s["candidate"] for s in started] == ["realmlp_td"]
