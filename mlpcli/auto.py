"""`--preset auto`: train the lecture's MLP and the quality recipe, keep the better (issue 14).

Neither network wins on every table of the benchmark (bench/QUALITY.md): the recipe is
better on the larger tables, the lecture's small MLP on small cohorts and spectra. So `auto`
trains each candidate of `CANDIDATES` on the same prepared arrays, each from its own copy of
the run's generator (each is the network its own preset trains on these arrays), scores them
on the validation rows with the task's default metric (accuracy, R^2, ...) and keeps the
better; a tie keeps the earlier candidate (classic: smaller and faster to predict). The
model file is the winner's, with every candidate's score under `auto` (`Choice`).

A candidate the options do not apply to is left out (`--ensemble` needs the recipe,
`--batchnorm` the lecture's MLP); one that diverges loses. Options that differ from auto's
defaults apply to both candidates. Without validation rows there is nothing to choose on:
the first candidate that applies trains alone; so does the lecture's MLP out of core and above
`MAX_RECIPE_ROWS` training rows.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpcli import config, describe
from mlpcli import task as tasks
from mlpcli.config import Settings
from mlpcli.errors import DivergenceError, UsageError
from mlpcli.prepare import PreparedData
from mlpcli.training import EpochRecord, FitResult, evaluate_loss

LOG = logging.getLogger("mlpcli")

#: The presets `auto` chooses between, in the order a tie is settled.
CANDIDATES = ("classic", "realmlp_td")
NAME = "auto"
#: Above this many training rows `auto` trains only the lecture's MLP (early stopping keeps it
#: to minutes; the recipe runs its 256 epochs whatever the size).
MAX_RECIPE_ROWS = 100_000


@dataclass(frozen=True)
class Choice:
    """Which candidate won, on which metric, and every candidate's validation score (None:
    left out or diverged, with the reason in `notes`) and training seconds."""

    chosen: str
    metric: str
    scores: dict[str, float | None]
    seconds: dict[str, float]
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AutoResult(FitResult):
    """The winner's `FitResult`, with the choice and the winner's settings (what the model
    file records: the model is that preset's)."""

    choice: Choice | None = None
    settings: Settings | None = None


def is_auto(settings: Settings) -> bool:
    return settings.model.preset == NAME


def candidate_settings(settings: Settings, name: str, own_preprocessing: bool = False) -> Settings:
    """`settings` as preset `name` would have them: that preset's values, then every model
    and training option that differs from auto's defaults; the data and preprocessing stay
    those of the prepared arrays (or, `own_preprocessing`, are the preset's too)."""
    defaults = config.resolve({"preset": NAME}, base=config.Settings())
    chosen = config.resolve({"preset": name}, base=config.Settings())
    sections: dict[str, Any] = {"preprocess": settings.preprocess}
    for attr in ("preprocess", "model", "train")[0 if own_preprocessing else 1 :]:
        mine, default = getattr(settings, attr), getattr(defaults, attr)
        changed = {
            f.name: getattr(mine, f.name)
            for f in dataclasses.fields(mine)
            if f.name != "preset" and getattr(mine, f.name) != getattr(default, f.name)
        }
        sections[attr] = dataclasses.replace(getattr(chosen, attr), **changed)
    return dataclasses.replace(chosen, data=settings.data, **sections)


def out_of_core_settings(settings: Settings) -> Settings:
    """`auto` out of core: the lecture's MLP with its own preprocessing (the recipe and the
    smooth clip have no out-of-core path), the options given still applied."""
    return candidate_settings(settings, CANDIDATES[0], own_preprocessing=True)


def fit(
    settings: Settings,
    prepared: PreparedData,
    rng: np.random.Generator,
    fit_one: Callable[..., tuple[Any, FitResult]],
    callback: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Any, AutoResult]:
    """Train every candidate that applies with `fit_one` (`fitting.fit_model`) and return
    the best on validation, with its `AutoResult`. `rng` ends as the winner's copy left it."""
    spec = tasks.get(prepared.task.task)
    metric_name, greater = spec.metric(None).name, spec.metric(None).greater_is_better
    metric = spec.epoch_score  # what the loop tracks every epoch (`fitting.epoch_metric`)
    scores: dict[str, float | None] = {}
    seconds: dict[str, float] = {}
    notes: dict[str, str] = {}
    fitted: dict[str, tuple[Any, FitResult, Settings, np.random.Generator]] = {}
    first_error: UsageError | None = None
    names = _applicable(prepared, notes)
    scores.update(dict.fromkeys(notes))
    for i, name in enumerate(names, 1):
        LOG.info(f"--preset auto: training {name} ({i} of {len(names)}).")
        own = copy.deepcopy(rng)
        started = time.perf_counter()
        try:
            chosen = candidate_settings(settings, name)
            net, result = fit_one(chosen, prepared, own, callback, should_stop)
        except UsageError as exc:  # the options do not apply to this candidate
            first_error = first_error or exc
            notes[name] = str(exc)
            scores[name] = None
            continue
        except DivergenceError as exc:
            notes[name] = str(exc)
            scores[name] = None
            continue
        finally:
            seconds[name] = round(time.perf_counter() - started, 3)
        fitted[name] = (net, result, chosen, own)
        scores[name] = _score(net, prepared, metric)
        if prepared.X_val is None or result.stop_reason == "interrupted":
            break  # nothing to choose on, or the user stopped the run
    if not fitted:
        if first_error is not None:
            raise first_error
        reasons = "; ".join(notes.values())
        raise DivergenceError(f"--preset auto: every candidate diverged ({reasons})")
    winner = _best(scores, fitted, greater)
    net, result, chosen, own = fitted[winner]
    rng.bit_generator.state = own.bit_generator.state
    choice = Choice(winner, metric_name, scores, seconds, notes)
    LOG.info(f"--preset auto chose {winner}: {describe.auto_choice(choice.to_dict())}.")
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(FitResult)}
    return net, AutoResult(**fields, choice=choice, settings=chosen)


def _applicable(prepared: PreparedData, notes: dict[str, str]) -> tuple[str, ...]:
    """The candidates for these arrays: out of core (rows on disk) or above `MAX_RECIPE_ROWS`
    training rows only the lecture's MLP (the reason goes into `notes`)."""
    from mlpcli.sampling import RowFile

    if isinstance(prepared.X, RowFile):
        why = "the recipe does not train out of core"
    elif len(prepared.X) > MAX_RECIPE_ROWS:
        why = (
            f"left out above {MAX_RECIPE_ROWS:,} training rows (its 256 epochs of 3 x 256 "
            "units would take hours); give --preset realmlp_td to train it"
        )
    else:
        return CANDIDATES
    notes.update(dict.fromkeys(CANDIDATES[1:], why))
    return CANDIDATES[:1]


def _score(net: Any, prepared: PreparedData, metric: Callable[..., float]) -> float | None:
    if prepared.X_val is None or prepared.Y_val is None:
        return None
    _, P = evaluate_loss(net, prepared.X_val, prepared.Y_val)
    value = float(metric(prepared.Y_val, P))
    return value if np.isfinite(value) else None


def _best(scores: dict[str, float | None], fitted: dict[str, Any], greater: bool) -> str:
    """The fitted candidate with the best score; ties (and undefined scores) to the earlier."""
    sign = 1.0 if greater else -1.0

    def key(item: tuple[int, str]) -> tuple[float, int]:
        order, name = item
        score = scores[name]
        return (-np.inf if score is None else sign * score, -order)

    return max(((i, n) for i, n in enumerate(CANDIDATES) if n in fitted), key=key)[1]
