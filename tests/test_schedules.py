"""Learning-rate schedules against their formulas, reduce-on-plateau's bookkeeping, checkpoints
and option errors."""

from __future__ import annotations

import json
import math

import pytest

from mlpcli import config, schedules
from mlpcli.errors import ModelFileError, UsageError

NAMES = list(schedules.SCHEDULES)


def lrs(schedule: schedules.Schedule, monitors: list[float], start: int = 0) -> list[float]:
    return [schedule.lr(start + e, m) for e, m in enumerate(monitors)]


def test_registry_names() -> None:
    assert NAMES == ["constant", "step", "cosine", "plateau"]
    assert all(cls.name == key for key, cls in schedules.SCHEDULES.items())
    assert tuple(NAMES) == config.SCHEDULES


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("constant", {}),
        ("step", {"step_size": 10, "gamma": 0.5}),
        ("cosine", {"min_lr": 0.0}),
        ("plateau", {"factor": 0.5, "patience": 5, "min_delta": 0.0, "min_lr": 1e-6}),
    ],
    ids=NAMES,
)
def test_defaults(name: str, expected: dict[str, float]) -> None:
    schedule = schedules.get(name, 0.1, 20)
    assert schedule.hyperparameters() == expected
    assert all(type(schedule.lr(e, 1.0)) is float for e in range(3))


def test_constant() -> None:
    assert lrs(schedules.get("constant", 0.3, 5), [5.0, 4.0, 6.0]) == [0.3, 0.3, 0.3]


def test_step_by_hand() -> None:
    """lr0 * gamma^floor((e+1)/step_size) with step_size 2, gamma 0.5, lr0 1."""
    schedule = schedules.get("step", 1.0, 10, step_size=2, gamma=0.5)
    assert lrs(schedule, [0.0] * 6) == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]
    default = schedules.get("step", 1.0, 30)
    assert [default.lr(e, None) for e in (8, 9, 18, 19)] == [1.0, 0.5, 0.5, 0.25]


def test_cosine_by_hand() -> None:
    """0.5*(1 + cos(pi*(e+1)/4)) for e = 0..3, then it stays at min_lr."""
    schedule = schedules.get("cosine", 1.0, 4)
    got = [schedule.lr(e, None) for e in (0, 1, 2, 3, 10)]
    assert got == pytest.approx([0.8535533905932737, 0.5, 0.14644660940672624, 0.0, 0.0])


def test_cosine_formula_with_min_lr() -> None:
    lr0, min_lr, epochs = 0.01, 1e-4, 7
    schedule = schedules.get("cosine", lr0, epochs, min_lr=min_lr)
    for e in range(epochs):
        expected = min_lr + 0.5 * (lr0 - min_lr) * (1 + math.cos(math.pi * (e + 1) / epochs))
        assert schedule.lr(e, None) == pytest.approx(expected, rel=1e-14)
    assert schedule.lr(epochs - 1, None) == pytest.approx(min_lr, rel=1e-14)


def test_plateau_cuts_after_patience_bad_epochs_and_restarts_the_count() -> None:
    schedule = schedules.get("plateau", 1.0, 100, patience=2, factor=0.5)
    monitors = [1.0, 0.9, 0.95, 0.95, 0.9, 0.8, 0.85, 0.85, 0.85, 0.85]
    # best 1.0, 0.9; two bad -> 0.5 (count restarts); 0.9 ties the best: bad; 0.8 improves;
    # two bad -> 0.25; two more bad -> 0.125.
    assert lrs(schedule, monitors) == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_plateau_with_patience_zero_cuts_on_every_bad_epoch() -> None:
    schedule = schedules.get("plateau", 1.0, 100, patience=0, factor=0.1)
    assert lrs(schedule, [1.0, 2.0, 0.5, 0.6]) == pytest.approx([1.0, 0.1, 0.1, 0.01])


def test_plateau_min_delta_is_relative_to_the_best() -> None:
    """An improvement must beat best - min_delta*|best|: 9 for 10, -22 for -20 (an absolute
    min_delta of 0.1 would have taken 9.5 and -21)."""
    schedule = schedules.get("plateau", 1.0, 100, patience=1, min_delta=0.1)
    assert lrs(schedule, [10.0, 9.5, 8.5]) == [1.0, 0.5, 0.5]
    assert schedule.best == 8.5
    negative = schedules.get("plateau", 1.0, 100, patience=1, min_delta=0.1)
    assert lrs(negative, [-20.0, -21.0, -23.0]) == [1.0, 0.5, 0.5]


def test_plateau_never_goes_below_min_lr_nor_raises_the_rate() -> None:
    floor = schedules.get("plateau", 1e-5, 100, patience=0, factor=0.3)
    assert lrs(floor, [1.0, 1.0, 1.0, 1.0]) == pytest.approx([1e-5, 3e-6, 1e-6, 1e-6])
    below = schedules.get("plateau", 1e-7, 100, patience=0)  # below the default min_lr 1e-6
    assert lrs(below, [1.0, 1.0, 1.0]) == [1e-7, 1e-7, 1e-7]


def test_plateau_treats_non_finite_values_as_no_improvement() -> None:
    schedule = schedules.get("plateau", 1.0, 100, patience=1)
    assert lrs(schedule, [math.nan, 3.0, math.inf, 2.0]) == [0.5, 0.5, 0.25, 0.25]
    assert schedule.best == 2.0


def test_plateau_needs_a_monitored_value() -> None:
    with pytest.raises(UsageError, match="--schedule plateau needs a monitored loss"):
        schedules.get("plateau", 1.0, 10).lr(0, None)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_resume_gives_the_same_rates(name: str) -> None:
    monitors = [1.0, 0.9, 0.95, 0.97, 0.99, 0.98, 0.85, 0.9, 0.91, 0.92]
    hyper = {"plateau": {"patience": 2}, "step": {"step_size": 3}}.get(name, {})
    straight = lrs(schedules.get(name, 0.1, 10, **hyper), monitors)

    first = schedules.get(name, 0.1, 10, **hyper)
    head = lrs(first, monitors[:5])  # saved with one bad epoch counted
    saved = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    second = schedules.get(name, 0.1, 10, **hyper)
    second.load_state_dict(saved)
    assert head + lrs(second, monitors[5:], start=5) == straight


def test_fresh_plateau_state_is_json_able_and_restores() -> None:
    fresh = schedules.get("plateau", 0.1, 10)
    state = fresh.state_dict()
    assert state == {
        "schedule": "plateau",
        "scalars": {"lr": 0.1, "best": None, "num_bad_epochs": 0},
    }
    used = schedules.get("plateau", 0.1, 10, patience=0)
    lrs(used, [1.0, 2.0])
    used.load_state_dict(json.loads(json.dumps(state, allow_nan=False)))
    assert (used.current, used.best, used.num_bad_epochs) == (0.1, None, 0)


def test_load_refuses_another_schedule_or_incomplete_state() -> None:
    with pytest.raises(UsageError, match="resume with --schedule step"):
        schedules.get("cosine", 0.1, 10).load_state_dict(
            schedules.get("step", 0.1, 10).state_dict()
        )
    with pytest.raises(ModelFileError, match="incomplete"):
        schedules.get("plateau", 0.1, 10).load_state_dict({"schedule": "plateau", "scalars": {}})


def test_unknown_schedule_lists_the_choices() -> None:
    with pytest.raises(
        UsageError, match="Unknown learning-rate schedule 'linear'; choose one of: "
    ):
        schedules.get("linear", 0.1, 10)


@pytest.mark.parametrize(
    ("name", "lr0", "epochs", "hyper", "message"),
    [
        ("constant", 0.0, 10, {}, "--lr must be > 0"),
        ("cosine", 0.1, 0, {}, "--epochs must be >= 1"),
        ("step", 0.1, 10, {"step_size": 0}, "--lr-step-size must be >= 1"),
        ("step", 0.1, 10, {"step_size": 2.5}, "--lr-step-size must be a whole number"),
        ("step", 0.1, 10, {"gamma": 1.5}, "--lr-gamma must be > 0 and < 1"),
        ("cosine", 0.1, 10, {"min_lr": -1.0}, "--min-lr must be >= 0"),
        ("cosine", 0.1, 10, {"min_lr": 0.2}, r"--min-lr \(0.2\) must not exceed --lr \(0.1\)"),
        ("plateau", 0.1, 10, {"factor": 1.0}, "--lr-factor must be > 0 and < 1"),
        ("plateau", 0.1, 10, {"patience": -1}, "--lr-patience must be >= 0"),
        ("plateau", 0.1, 10, {"min_delta": -0.1}, "--lr-min-delta must be >= 0"),
        ("plateau", 0.1, 10, {"min_delta": math.nan}, "--lr-min-delta must be finite"),
        ("constant", 0.1, 10, {"gamma": 0.5}, "--lr-gamma does not apply .* it takes no options"),
        (
            "step",
            0.1,
            10,
            {"patience": 3},
            "--lr-patience does not apply to learning-rate "
            "schedule 'step'; it takes --lr-step-size, --lr-gamma",
        ),
    ],
)
def test_bad_values_name_the_option(
    name: str, lr0: float, epochs: int, hyper: dict, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        schedules.get(name, lr0, epochs, **hyper)


# ----------------------------------------------------------------- progress schedules
PROGRESS_NAMES = list(schedules.PROGRESS_SCHEDULES)
SQRT2 = math.sqrt(2.0)

#: name -> [(t, f(t) worked out by hand)]
PROGRESS_BY_HAND = {
    "constant": [(0.0, 1.0), (0.7, 1.0), (1.0, 1.0)],
    "cosine": [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)],
    # log2(1 + 15 t) = 0, 1/2, 1, 3/2, 2, 4 at t = 0, (sqrt2-1)/15, 1/15, (2 sqrt2-1)/15, 3/15, 1
    "coslog4": [
        (0.0, 0.0),
        ((SQRT2 - 1) / 15, 1.0),
        (1 / 15, 0.0),
        ((2 * SQRT2 - 1) / 15, 1.0),
        (3 / 15, 0.0),
        (1.0, 0.0),
    ],
    # 0.04 + 0.96 (1 - cos(pi u)) / 2 with u = 0, 1/2, 1; then 1 - (1 - 1e-5) (1 - cos(pi u)) / 2
    "one_cycle": [(0.0, 0.04), (0.125, 0.52), (0.25, 1.0), (0.625, 0.500005), (1.0, 1e-5)],
    "flat_cos": [(0.0, 1.0), (0.3, 1.0), (0.5, 1.0), (0.75, 0.5), (1.0, 0.0)],
}


def test_progress_registry_is_covered_by_hand_values() -> None:
    assert set(PROGRESS_BY_HAND) == set(PROGRESS_NAMES)
    assert all(cls.name == key for key, cls in schedules.PROGRESS_SCHEDULES.items())


@pytest.mark.parametrize("name", PROGRESS_NAMES, ids=PROGRESS_NAMES)
def test_progress_schedules_by_hand(name: str) -> None:
    schedule = schedules.get_progress(name)
    for t, expected in PROGRESS_BY_HAND[name]:
        assert schedule(t) == pytest.approx(expected, abs=1e-12), t


def test_progress_of_a_step() -> None:
    """t = steps done / total: 0 at the first step, (S-1)/S at the last, clipped to [0, 1]."""
    progress = schedules.ProgressSchedule.progress
    assert [progress(s, 4) for s in range(4)] == [0.0, 0.25, 0.5, 0.75]
    assert progress(9, 4) == 1.0


def test_unknown_progress_schedule_lists_the_choices() -> None:
    with pytest.raises(UsageError, match="Unknown progress schedule 'coslog3'; choose one of: "):
        schedules.get_progress("coslog3")
