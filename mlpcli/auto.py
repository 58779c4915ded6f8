"""`--preset auto`: train the lecture's MLP and the quality recipe, keep the recipe only where
it is clearly better (issue 14).

Neither network wins on every table of the benchmark (bench/QUALITY.md): the recipe is
better on the larger tables, the lecture's small MLP on small cohorts and spectra. So `auto`
trains each candidate of `CANDIDATES`, each exactly as its own preset would (`train`: on the
arrays its own preprocessing makes, from its own copy of the run's generator; cv, tune and
the Python API: on the shared prepared arrays), and scores them on the validation rows.

The rule (`_best`): the first candidate (classic) is kept unless a later one beats it by more
than `Z` standard errors of the paired per-row difference on the validation rows (row
accuracy, or the row's share of 1 - R^2). A plain "higher score wins" picked wrongly on small
tables: with 40-85 validation rows one row is 1-2.5 points of accuracy, and the recipe's
best-of-256-epochs score is chosen on those same rows, so it reads high. The model file is the
winner's, with every candidate's score, the gain and its standard error under `auto`
(`Choice`).

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

from mlpcli import config, describe, presets
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
#: A later candidate replaces the earlier only if its mean per-row gain on the validation rows
#: exceeds this many standard errors of that mean (about a one-sided 2.3% test).
Z = 2.0


@dataclass(frozen=True)
class Choice:
    """Which candidate won, on which metric, and every candidate's validation score (None:
    left out or diverged, with the reason in `notes`) and training seconds."""

    chosen: str
    metric: str
    scores: dict[str, float | None]
    seconds: dict[str, float]
    notes: dict[str, str] = field(default_factory=dict)
    #: Per later candidate: its mean per-row gain over the first on the validation rows and
    #: that mean's standard error (`_gain`); it wins only where gain > Z * se.
    gains: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AutoResult(FitResult):
    """The winner's `FitResult`, with the choice and the winner's settings (what the model
    file records: the model is that preset's)."""

    choice: Choice | None = None
    settings: Settings | None = None
    prepared: PreparedData | None = None


def is_auto(settings: Settings) -> bool:
    return settings.model.preset == NAME


def candidate_settings(settings: Settings, name: str, own_preprocessing: bool = False) -> Settings:
    """`settings` as preset `name` would have them: that preset's values, then every model
    and training option that differs from auto's defaults; the data and preprocessing stay
    those of the prepared arrays (or, `own_preprocessing`, are the preset's too)."""
    defaults = config.resolve({"preset": NAME}, base=config.Settings())
    chosen = config.resolve({"preset": name}, base=config.Settings())
    sections: dict[str, Any] = {"preprocess": settings.preprocess}
    given: set[str] = set()
    for attr in ("preprocess", "model", "train")[0 if own_preprocessing else 1 :]:
        mine, default = getattr(settings, attr), getattr(defaults, attr)
        changed = {
            f.name: getattr(mine, f.name)
            for f in dataclasses.fields(mine)
            if f.name != "preset" and getattr(mine, f.name) != getattr(default, f.name)
        }
        given.update(changed)
        if attr == "model" and name != CANDIDATES[0]:
            # auto's recipe is an ensemble (`PRESETS["auto"]["ensemble"]`); the lecture's MLP
            # has none, so it takes --ensemble only when given (K >= 2 leaves it out). One
            # temperature needs one network's logits: --calibrate alone makes the recipe one.
            calibrated = settings.train.calibrate and "ensemble" not in given
            changed["ensemble"] = 1 if calibrated else mine.ensemble
        sections[attr] = dataclasses.replace(getattr(chosen, attr), **changed)
    candidate = dataclasses.replace(chosen, data=settings.data, **sections)
    # --ensemble K without --hidden: the recipe's members are as narrow as its own preset's
    return candidate if "hidden" in given else config.ensemble_width(candidate, chosen)


def out_of_core_settings(settings: Settings) -> Settings:
    """`auto` out of core: the lecture's MLP with its own preprocessing (the recipe and the
    smooth clip have no out-of-core path), the options given still applied."""
    return candidate_settings(settings, CANDIDATES[0], own_preprocessing=True)


#: Prepares the arrays for a candidate's settings from a fresh generator of the run's seed
#: (`pipeline.train`), returning them and that generator as preparing left it.
Prepare = Callable[[Settings], tuple[PreparedData, np.random.Generator]]


def fit(
    settings: Settings,
    prepared: PreparedData,
    rng: np.random.Generator,
    fit_one: Callable[..., tuple[Any, FitResult]],
    callback: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    prepare: Prepare | None = None,
    on_candidate: Callable[[str, Settings, PreparedData], None] | None = None,
) -> tuple[Any, AutoResult]:
    """Train every candidate that applies with `fit_one` (`fitting.fit_model`) and return
    the one `_best` keeps, with its `AutoResult`. With `prepare`, each candidate trains on
    the arrays of its own preset's preprocessing (`prepared`, made with auto's settings from
    the generator `rng` now holds, is reused where those are the same), so each is bit for bit
    its preset's model; the winner's arrays come back in `AutoResult.prepared`. `rng` ends as
    the winner's copy left it. `on_candidate` hears each candidate's name, settings and arrays
    just before it trains (the progress display starts its own count)."""
    spec = tasks.get(prepared.task.task)
    metric_name = spec.metric(None).name
    metric = spec.epoch_score  # what the loop tracks every epoch (`fitting.epoch_metric`)
    scores: dict[str, float | None] = {}
    seconds: dict[str, float] = {}
    notes: dict[str, str] = {}
    fitted: dict[str, Fitted] = {}
    first_error: UsageError | None = None
    names = _applicable(prepared, notes)
    scores.update(dict.fromkeys(notes))
    for i, name in enumerate(names, 1):
        LOG.info(f"--preset auto: training {name} ({i} of {len(names)}).")
        started = time.perf_counter()
        try:
            chosen = candidate_settings(settings, name, own_preprocessing=prepare is not None)
            if prepare is None or chosen.preprocess == settings.preprocess:
                arrays, own = prepared, copy.deepcopy(rng)
            else:
                arrays, own = prepare(chosen)
            if not presets.uses_recipe(chosen):
                presets.check_classic(chosen)  # left out before its progress bar shows
            if on_candidate is not None:
                on_candidate(name, chosen, arrays)
            net, result = fit_one(chosen, arrays, own, callback, should_stop)
        except UsageError as exc:  # the options do not apply to this candidate
            first_error = first_error or exc
            notes[name] = str(exc)
            scores[name] = None
            LOG.info(f"--preset auto: {name} left out: {exc}")
            continue
        except DivergenceError as exc:
            notes[name] = str(exc)
            scores[name] = None
            continue
        finally:
            seconds[name] = round(time.perf_counter() - started, 3)
        outputs = _validation_outputs(net, arrays)
        fitted[name] = Fitted(net, result, chosen, own, arrays, outputs)
        scores[name] = _score(arrays, outputs, metric)
        if prepared.X_val is None or result.stop_reason == "interrupted":
            why = "no validation rows to choose on" if prepared.X_val is None else "interrupted"
            for rest in names[i:]:
                notes.setdefault(rest, f"not trained: {why}")
                scores.setdefault(rest, None)
            break  # nothing to choose on, or the user stopped the run
    if not fitted:
        if first_error is not None:
            raise first_error
        reasons = "; ".join(notes.values())
        raise DivergenceError(f"--preset auto: every candidate diverged ({reasons})")
    gains = _gains(spec.name, fitted)
    winner = _best(scores, fitted, gains)
    best = fitted[winner]
    rng.bit_generator.state = best.rng.bit_generator.state
    choice = Choice(winner, metric_name, scores, seconds, notes, gains)
    LOG.info(f"--preset auto chose {winner}: {describe.auto_choice(choice.to_dict())}.")
    fields = {f.name: getattr(best.result, f.name) for f in dataclasses.fields(FitResult)}
    result = AutoResult(**fields, choice=choice, settings=best.settings, prepared=best.prepared)
    return best.net, result


@dataclass(frozen=True)
class Fitted:
    """A trained candidate: its network, loop result, settings, generator, arrays and its
    outputs on the validation rows (None without them)."""

    net: Any
    result: FitResult
    settings: Settings
    rng: np.random.Generator
    prepared: PreparedData
    outputs: np.ndarray | None


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


def _validation_outputs(net: Any, prepared: PreparedData) -> np.ndarray | None:
    if prepared.X_val is None or prepared.Y_val is None:
        return None
    return evaluate_loss(net, prepared.X_val, prepared.Y_val)[1]


def _score(
    prepared: PreparedData, P: np.ndarray | None, metric: Callable[..., float]
) -> float | None:
    if P is None or prepared.Y_val is None:
        return None
    value = float(metric(prepared.Y_val, P))
    return value if np.isfinite(value) else None


def _accuracy_terms(task: str, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Each row's share of accuracy: 1 if right (multilabel: the share of its labels right)."""
    spec = tasks.get(task)
    hit = np.asarray(spec.decide(Y) == spec.decide(P), dtype=np.float64)
    return np.asarray(hit.reshape(len(Y), -1).mean(axis=1))


def _r2_terms(task: str, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Each row's term of R^2 = 1 - mean(SE)/var(y) (averaged over targets): -SE/var(y), the
    same whatever affine map each candidate's target encoding applied."""
    Y = np.asarray(Y, np.float64).reshape(len(Y), -1)
    P = np.asarray(P, np.float64).reshape(len(Y), -1)
    var = np.var(Y, axis=0)
    return np.asarray(-np.mean((P - Y) ** 2 / np.where(var > 0, var, 1.0), axis=1))


#: Per task, each validation row's term of its default metric (higher is better), whose mean
#: over the rows is that metric up to a constant: what `_gains` pairs row by row.
ROW_TERMS: dict[str, Callable[[str, np.ndarray, np.ndarray], np.ndarray]] = {
    "binary": _accuracy_terms,
    "multiclass": _accuracy_terms,
    "multilabel": _accuracy_terms,
    "regression": _r2_terms,
}


def gain(first: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """The mean per-row gain of `other` over `first` (paired terms of the same rows) and the
    standard error of that mean (0 with fewer than two rows)."""
    d = np.asarray(other, np.float64) - np.asarray(first, np.float64)
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(np.mean(d)) if len(d) else 0.0, se


def _gains(task: str, fitted: dict[str, Fitted]) -> dict[str, tuple[float, float]]:
    """Each later fitted candidate's `gain` over the first fitted one, on the validation rows
    (the same rows for every candidate: the split depends on the seed and the data options
    only). Left out where a candidate has no finite outputs there."""
    order = [n for n in CANDIDATES if n in fitted and fitted[n].outputs is not None]
    if len(order) < 2:
        return {}
    terms = {}
    for name in order:
        f = fitted[name]
        values = ROW_TERMS[task](task, f.prepared.Y_val, f.outputs)  # type: ignore[arg-type]
        if np.all(np.isfinite(values)):
            terms[name] = values
    first = order[0]
    if first not in terms:
        return {}
    return {n: gain(terms[first], terms[n]) for n in order[1:] if n in terms}


def _best(
    scores: dict[str, float | None],
    fitted: dict[str, Any],
    gains: dict[str, tuple[float, float]],
) -> str:
    """The first fitted candidate with a score, replaced by the later one with the largest
    gain where that gain exceeds `Z` standard errors (a candidate without a score loses;
    if none has one, the first fitted)."""
    order = [n for n in CANDIDATES if n in fitted]
    scored = [n for n in order if scores.get(n) is not None]
    if not scored:
        return order[0]
    first = scored[0]
    clear = [(g, n) for n, (g, se) in gains.items() if n in scored and g > max(Z * se, 0.0)]
    if first != order[0] or not clear:
        return first
    return max(clear, key=lambda item: (item[0], -CANDIDATES.index(item[1])))[1]
