"""Turn a raw feature table into the network's input matrix (`Preprocessor`).

Everything is fitted on the training rows only (so validation and test rows never leak into the
statistics) and stored as plain JSON metadata plus float64 arrays, so the model file needs no
pickle; targets are encoded by `target_encoding`. Per numeric column, in this order:

- log1p:   x <- log(1 + x)                     (optional; negative values are an error)
- impute, scale, clip: the rules of `numeric_rules` (median/mean/constant; standard, minmax,
  robust, robust_range or none; smooth clipping or none)

robust_range followed by smooth clipping is RealMLP-TD's numeric preprocessing (Holzmüller et al.
2024, pytabkit's `RobustScaleFactory` and `smooth_clip`): outliers are pulled towards +-3 while
the bulk of each column stays almost linear, and a column that is mostly one value (IQR 0) is
still scaled by its spread instead of being treated as constant.

Categorical columns are one-hot encoded; missing is a level of its own. Levels seen in fewer
than `min_level_count` training rows pool into one level OTHER_LEVEL (scikit-learn's "infrequent"
category); a level not seen in training encodes as that level if the column has it, else as all
zeros. A column left with more than `max_levels` levels is, by `high_cardinality`:

- frequency: one column, level -> its share of the training rows (count / n), unseen -> 0
             (category_encoders' CountEncoder, normalised);
- onehot:    the least frequent levels beyond `max_levels` pool into OTHER_LEVEL as well.

The module is one class and its private column records (about 600 lines): fit, transform,
state and derivatives all walk the same list of columns, so they stay together.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from mlpcli.streaming import TableSummary

import numpy as np
import pandas as pd
from numpy.typing import DTypeLike, NDArray

from mlpcli.cells import check_columns, check_numbers, level_codes, numeric_values, quote_list
from mlpcli.errors import DataError, ModelFileError, UsageError, choose, offers, warn_or_fail
from mlpcli.modelfile import LEVEL_KINDS, PREPROCESSING_ARRAYS, level_record
from mlpcli.numeric_rules import CLIPPERS, IMPUTERS, SCALERS, ArrayStats, Clipper, ColumnStats

log = logging.getLogger("mlpcli")

Array = NDArray[np.float64]

#: The level that stands for a missing categorical value.
MISSING_LEVEL = "__missing__"
#: The level that rare (and unseen) categorical values pool into.
OTHER_LEVEL = "__other__"
#: Suffix of a missing-indicator output column.
INDICATOR_SUFFIX = "__missing"
#: Version of the preprocessor's state in the model file.
STATE_VERSION = 1

#: Rows of the numeric columns transformed at once: a float64 block of 2,048 x 100 is 1.6 MB,
#: so its half-dozen passes stay in the processor's caches (65,536 rows, 52 MB, took 2x the time
#: in predict: 1.37 against 0.68 us a row for 100 columns, load 5).
NUMERIC_BLOCK_ROWS = 2_048


# --- column helpers -----------------------------------------------------------------------------


def _level_index(series: pd.Series, column: _Column, other: int = -1) -> NDArray[np.intp]:
    """Per row, the index of its level in `column.levels`; a level the training rows never had
    gets `other` (-1: encoded as all zeros, with a warning `predicting` merges per table)."""
    codes, names = level_codes(series)
    lookup = {level: j for j, level in enumerate(column.levels)}
    # The last entry serves code -1 (missing): the missing level, or -1 if training had none.
    to_level = np.array(
        [lookup.get(n, other) for n in names] + [lookup.get(MISSING_LEVEL, -1)], dtype=np.intp
    )
    level = to_level[codes]
    known = level >= 0
    if not known.all():
        unseen = sorted({n for n, j in zip(names, to_level[:-1], strict=True) if j < 0})
        if (codes[~known] < 0).any():
            unseen.append("(missing)")
        log.warning(
            "Column '%s': %d row(s) have levels not seen in training (%s); "
            "they are encoded as all zeros.",
            column.name,
            int((~known).sum()),
            quote_list(unseen, 5),
        )
    return level


# --- the feature preprocessor -------------------------------------------------------------------


@dataclass
class _Column:
    """One input column and where its output block starts."""

    name: str
    kind: str  # "numeric", "categorical" (one-hot) or "frequency"
    offset: int = 0
    numeric_index: int = -1  # index into the impute/center/scale arrays
    indicator: bool = False
    levels: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # training rows per level ("frequency")

    @property
    def width(self) -> int:
        if self.kind == "categorical":
            return len(self.levels)
        return 1 + int(self.indicator)

    def output_names(self) -> list[str]:
        if self.kind == "categorical":
            return [f"{self.name}={level}" for level in self.levels]
        return [self.name] + ([self.name + INDICATOR_SUFFIX] if self.indicator else [])

    def shares(self) -> Array:
        """Each level's share of the training rows (the "frequency" encoding)."""
        counts = np.asarray(self.counts, dtype=np.float64)
        shares: Array = counts / counts.sum()
        return shares


@dataclass
class _Fitted:
    """Columns and their statistics as fitting decides them, in table order."""

    columns: list[_Column] = field(default_factory=list)
    impute_values: list[float] = field(default_factory=list)
    centers: list[float] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    constant: list[str] = field(default_factory=list)

    def categorical(self, column: _Column) -> None:
        self.columns.append(column)

    def numeric(
        self, name: str, fill: float, scaling: tuple[float, float], indicator: bool
    ) -> None:
        center, spread = scaling
        # A rounding-error spread is as constant as an exact zero.
        if not spread > 1e-12 * max(1.0, abs(center)):
            self.constant.append(name)
            spread = 1.0
        index = len(self.centers)
        self.columns.append(_Column(name, "numeric", numeric_index=index, indicator=indicator))
        self.impute_values.append(fill)
        self.centers.append(center)
        self.scales.append(spread)


class Preprocessor:
    """Impute, log-transform, scale and one-hot encode features; fitted on training rows only.

    Output columns keep the order of the input columns; a numeric column is followed by its
    missing indicator, a categorical column expands to one column per level.
    """

    def __init__(
        self,
        impute: str = "median",
        fill_value: float = 0.0,
        missing_indicators: bool = False,
        scale: str = "standard",
        log1p: bool = False,
        max_levels: int = 50,
        clip: str = "none",
        min_level_count: int = 1,
        high_cardinality: str = "onehot",
        *,
        strict: bool = False,
    ) -> None:
        choose("imputation", impute, IMPUTERS)
        choose("scaling", scale, SCALERS)
        choose("high-cardinality encoding", high_cardinality, HIGH_CARDINALITY)
        self.clip = clip
        self._clipper: Clipper = choose("clipping", clip, CLIPPERS)()
        if not np.isfinite(fill_value):
            raise UsageError(f"--fill-value must be a finite number, got {fill_value}.")
        if max_levels < 2:
            raise UsageError(f"--max-levels must be at least 2, got {max_levels}.")
        if min_level_count < 1:
            raise UsageError(f"--min-level-count must be at least 1, got {min_level_count}.")
        self.impute = impute
        self.fill_value = float(fill_value)
        self.missing_indicators = missing_indicators
        self.scale = scale
        self.log1p = log1p
        self.max_levels = int(max_levels)
        self.min_level_count = int(min_level_count)
        self.high_cardinality = high_cardinality
        self.strict = strict
        self._columns: list[_Column] = []
        self.impute_values_: Array = np.empty(0)
        self.centers_: Array = np.empty(0)
        self.scales_: Array = np.empty(0)

    # -- public properties

    @property
    def input_columns(self) -> list[str]:
        """The raw column names `transform` needs, in training order."""
        return [c.name for c in self._columns]

    @property
    def feature_names_out(self) -> list[str]:
        """One name per output column, e.g. `age`, `age__missing`, `batch=b1`."""
        return [name for c in self._columns for name in c.output_names()]

    @property
    def n_features_out(self) -> int:
        return sum(c.width for c in self._columns)

    # -- explaining a model in terms of its input columns

    def input_slices(self) -> dict[str, NDArray[np.intp]]:
        """Each input column -> the indices of its output columns (the value and its missing
        indicator, or the whole one-hot block), so it can be permuted or attributed as one."""
        return {c.name: np.arange(c.offset, c.offset + c.width) for c in self._columns}

    def input_kinds(self) -> dict[str, str]:
        """Each input column -> "numeric" (its value is the first output column),
        "categorical" (every output column is a 0/1 level indicator) or "frequency" (one
        column: the level's share of the training rows)."""
        return {c.name: c.kind for c in self._columns}

    def encoding_derivatives(self, frame: pd.DataFrame) -> Array:
        """d(output column) / d(raw value) per row, for the chain rule back to original units.

        A numeric value column gets 1 / scale, times 1 / (1 + x) under log1p, and NaN where the
        cell is missing (it was imputed, so its raw value has no effect). Missing indicators and
        one-hot columns have no raw unit and get 1 (per unit of the 0/1 encoding).
        Shape (n_samples, n_features_out).
        """
        check_columns(frame, self.input_columns, "feature")
        check_numbers(frame, [c.name for c in self._columns if c.kind == "numeric"])
        D = np.ones((len(frame), self.n_features_out))
        for column in self._columns:
            if column.kind != "numeric":
                continue
            x = numeric_values(frame[column.name], column.name)
            i = column.numeric_index
            d = np.full_like(x, 1.0 / self.scales_[i])
            if self.log1p:
                self._log1p(x.copy(), np.isnan(x), column.name)  # same checks as transform
                d /= 1.0 + x
            if self.clip != "none":
                u = np.log1p(x) if self.log1p else x.copy()
                u -= self.centers_[i]
                u /= self.scales_[i]
                d *= self._clipper.derivative(u)
            d[np.isnan(x)] = np.nan
            D[:, column.offset] = d
        return D

    def reference_row(self) -> Array:
        """The encoded "typical sample" that integrated gradients start from.

        Numeric columns sit at the training median when imputing by median (the imputation
        value), otherwise at the scaling center; missing indicators are 0 (observed); a one-hot
        block sits at the average of its levels, 1/k each, so that no level is favoured (all
        zeros, a level never seen, would attribute the network's whole level offset to it).
        """
        row = np.zeros(self.n_features_out)
        for column in self._columns:
            if column.kind == "frequency":  # the training rows' mean share
                row[column.offset] = float(np.sum(column.shares() ** 2))
                continue
            if column.kind != "numeric":
                row[column.offset : column.offset + column.width] = 1.0 / column.width
                continue
            i = column.numeric_index
            raw = self.impute_values_[i] if self.impute == "median" else self.centers_[i]
            row[column.offset] = (raw - self.centers_[i]) / self.scales_[i]
            if self.clip != "none":
                row[column.offset] = self._clipper(row[column.offset : column.offset + 1])[0]
        return row

    # -- fitting

    def fit(
        self, frame: pd.DataFrame, features: Sequence[str], categorical: Sequence[str] = ()
    ) -> Preprocessor:
        """Learn imputation values, scaling statistics and levels from the rows of `frame`."""
        features = list(features)
        duplicated = sorted({f for f in features if features.count(f) > 1})
        if duplicated:
            raise DataError(f"Feature column(s) listed twice: {quote_list(duplicated)}.")
        unknown = [c for c in categorical if c not in features]
        if unknown:
            raise UsageError(
                f"--categorical names column(s) that are not features: {quote_list(unknown)}."
            )
        check_columns(frame, features, "feature")
        if len(frame) == 0:
            raise DataError("No training rows to fit the preprocessing on.")

        listed = set(categorical)
        fitted = _Fitted()
        for name in features:
            series = frame[name]
            if name in listed or not pd.api.types.is_numeric_dtype(series.dtype):
                codes, names = level_codes(series)
                counts: Counter[str] = Counter()
                for j, count in enumerate(np.bincount(codes[codes >= 0], minlength=len(names))):
                    counts[names[j]] += int(count)
                fitted.categorical(self._fit_levels(counts, int((codes < 0).sum()), name))
                continue
            x = numeric_values(series, name)
            missing = np.isnan(x)
            if self.log1p:
                self._log1p(x, missing, name)
            n_missing = int(np.count_nonzero(missing))
            observed = x[~missing] if n_missing else x  # no copy of a complete column
            fill = self._fill_value(ArrayStats(observed), len(x) - n_missing, name)
            if n_missing:
                x[missing] = fill
            scaling = SCALERS[self.scale](ArrayStats(x))
            fitted.numeric(name, fill, scaling, self._indicator(n_missing > 0))
        return self._finish(fitted)

    def fit_summary(self, summary: TableSummary) -> Preprocessor:
        """Fit from one streaming pass over the training rows (`streaming.TableSummary`; columns
        in its table order): exact means, spreads, ranges and levels; median and quartiles
        within the sketch's stated rank error (exact up to `streaming.SKETCH_K` rows)."""
        if summary.log1p != self.log1p:
            raise ValueError("the summary's log1p differs from the preprocessor's")
        if summary.n_rows == 0:
            raise DataError("No training rows to fit the preprocessing on.")
        fitted = _Fitted()
        for name in summary.order:
            if name in summary.levels:
                fitted.categorical(
                    self._fit_levels(summary.levels[name], summary.missing_levels[name], name)
                )
                continue
            stats = summary.stats[name]
            fill = self._fill_value(stats, stats.count, name)
            imputed = stats.with_fill(fill, stats.n_missing)
            scaling = SCALERS[self.scale](imputed)
            fitted.numeric(name, fill, scaling, self._indicator(stats.n_missing > 0))
        return self._finish(fitted)

    def _indicator(self, any_missing: bool | np.bool_) -> bool:
        return self.missing_indicators and bool(any_missing)

    def _fill_value(self, observed: ColumnStats, n_observed: int, name: str) -> float:
        if n_observed == 0 and self.impute != "constant":
            raise DataError(
                f"Column '{name}' has no values in the training rows; drop it with "
                f"--drop '{name}' or use --impute constant."
            )
        return IMPUTERS[self.impute](observed, self.fill_value)

    def _finish(self, fitted: _Fitted) -> Preprocessor:
        if fitted.constant:
            log.warning(
                "Constant column(s) in the training rows, scaled by 1 instead of 0: %s.",
                quote_list(fitted.constant),
            )
        self._set_columns(fitted.columns)
        self.impute_values_ = np.asarray(fitted.impute_values, dtype=np.float64)
        self.centers_ = np.asarray(fitted.centers, dtype=np.float64)
        self.scales_ = np.asarray(fitted.scales, dtype=np.float64)
        return self

    def _set_columns(self, columns: list[_Column]) -> None:
        offset = 0
        for column in columns:
            column.offset = offset
            offset += column.width
        self._columns = columns

    def _fit_levels(self, counts: Counter[str], n_missing: int, name: str) -> _Column:
        """A categorical column from the training rows' level counts: rare levels pool into
        one, with a warning (an error if strict); a column left with more than `max_levels`
        levels is encoded by `high_cardinality`."""
        rare = {level for level, count in counts.items() if count < self.min_level_count}
        if len(rare) < 2:  # pooling one level into "other" would only rename it
            rare = set()
        if len(counts) - len(rare) + bool(rare) + bool(n_missing) > self.max_levels:
            encode = HIGH_CARDINALITY[self.high_cardinality]
            return encode(self, name, counts, n_missing, rare)
        return self._pooled(name, counts, n_missing, rare, set())

    def _pooled(
        self, name: str, counts: Counter[str], n_missing: int, rare: set[str], capped: set[str]
    ) -> _Column:
        """A one-hot column whose `rare` and `capped` levels pool into OTHER_LEVEL (sorted
        level names, then MISSING_LEVEL, OTHER_LEVEL), with one warning saying why."""
        pooled = rare | capped
        levels = sorted(set(counts) - pooled) + ([MISSING_LEVEL] if n_missing else [])
        if not pooled:
            return _Column(name, "categorical", levels=levels)
        why = []
        if rare:
            why.append(
                f"{len(rare)} seen in fewer than {self.min_level_count} rows (--min-level-count)"
            )
        if capped:
            room = self.max_levels - bool(n_missing) - 1
            why.append(
                f"{len(capped)} beyond the {room} most frequent (--max-levels {self.max_levels})"
            )
        example = min(pooled, key=lambda level: (-counts[level], level))
        warn_or_fail(
            f"Categorical column '{name}' has {len(counts)} levels; {' and '.join(why)} are "
            f"pooled into one level '{OTHER_LEVEL}' ({sum(counts[v] for v in pooled)} rows, e.g. "
            f"{example!r} in {counts[example]}).",
            self.strict,
        )
        return _Column(name, "categorical", levels=[*levels, OTHER_LEVEL])

    def _capped(self, name: str, counts: Counter[str], n_missing: int, rare: set[str]) -> _Column:
        """--high-cardinality onehot: the least frequent levels beyond `max_levels` pool too."""
        kept = sorted(set(counts) - rare, key=lambda level: (-counts[level], level))
        room = self.max_levels - bool(n_missing) - 1  # one column is left for OTHER_LEVEL
        return self._pooled(name, counts, n_missing, rare, set(kept[room:]))

    def _frequency(
        self, name: str, counts: Counter[str], n_missing: int, rare: set[str]
    ) -> _Column:
        """--high-cardinality frequency: one column holding each level's training share (every
        level keeps its own count: pooled, a rare level would get the whole pool's share)."""
        levels = sorted(counts)
        after = ""
        if rare:
            n_levels = len(counts) - len(rare) + 1 + bool(n_missing)
            after = f" ({n_levels} after pooling those seen in fewer than {self.min_level_count})"
        warn_or_fail(
            f"Categorical column '{name}' has {len(counts)} levels{after}, more than "
            f"--max-levels {self.max_levels}, so it is frequency-encoded: one column holding "
            "each level's share of the training rows (0 for a level not seen in training). "
            "Pass --high-cardinality onehot to one-hot the most frequent levels instead, or "
            "raise --max-levels.",
            self.strict,
        )
        return _Column(
            name,
            "frequency",
            levels=levels + ([MISSING_LEVEL] if n_missing else []),
            counts=[counts[level] for level in levels] + ([n_missing] if n_missing else []),
        )

    @staticmethod
    def _log1p(x: Array, missing: NDArray[np.bool_], name: str) -> None:
        negative = ~missing & (x < 0)
        if negative.any():
            raise DataError(
                f"Column '{name}' has negative values (first: {x[negative][0]}), which "
                + (
                    "--log1p cannot transform; drop --log1p or drop the column."
                    if offers("--log1p")
                    else "the model's log(1 + x) transform (from training) cannot take; blank "
                    "or replace those cells."
                )
            )
        np.log1p(x, out=x)

    def fit_transform(
        self,
        frame: pd.DataFrame,
        features: Sequence[str],
        categorical: Sequence[str] = (),
        dtype: DTypeLike = np.float32,
    ) -> NDArray[Any]:
        return self.fit(frame, features, categorical).transform(frame, dtype=dtype)

    # -- transforming

    def transform(
        self, frame: pd.DataFrame, dtype: DTypeLike = np.float32, out: NDArray[Any] | None = None
    ) -> NDArray[Any]:
        """The (n_samples, n_features_out) input matrix; columns are matched by name. `out`, an
        array of that shape and `dtype` to write into (zeroed here), saves allocating one."""
        if not self._columns:
            raise ModelFileError("The preprocessor has not been fitted.")
        check_columns(frame, self.input_columns, "feature")
        check_numbers(frame, [c.name for c in self._columns if c.kind == "numeric"])
        n_samples = len(frame)
        if out is None:
            out = np.zeros((n_samples, self.n_features_out), dtype=dtype)
        else:
            out[...] = 0
        done = self._transform_numeric_block(frame, out)
        for column in self._columns:
            if column.kind == "numeric" and done:
                continue
            series = frame[column.name]
            if column.kind == "categorical":
                self._transform_categorical(series, column, out)
            elif column.kind == "frequency":
                self._transform_frequency(series, column, out)
            else:
                self._transform_numeric(series, column, out)
        return out

    def _transform_numeric_block(self, frame: pd.DataFrame, out: NDArray[Any]) -> bool:
        """Every numeric column at once: `_transform_numeric`'s float64 steps on one (n, k)
        matrix, so the same bits (basic IEEE operations are exact whatever the layout) for a
        dozen ufunc calls instead of a dozen per column (predict, 100 columns: 1.1 s a 100,000
        rows before, at load 17). False when a column needs the column-by-column path: not
        plain numbers, an infinite value (its message names the column), or --log1p (log1p's
        SIMD and scalar loops may round differently). Rows go `NUMERIC_BLOCK_ROWS` at a time,
        so the float64 scratch stays small beside `out` on a long table; when a later block
        holds an infinite value, the column path rewrites every numeric column whole, so the
        blocks written before change nothing."""
        columns = [c for c in self._columns if c.kind == "numeric"]
        if not columns or self.log1p:
            return False
        names = [c.name for c in columns]
        dtypes = frame.dtypes[names] if frame.columns.is_unique else []
        if len(dtypes) != len(names) or not all(
            isinstance(d, np.dtype) and d.kind in "fiu" for d in dtypes
        ):
            return False
        index = np.asarray([c.numeric_index for c in columns])
        offsets = [c.offset for c in columns]
        flagged = [j for j, c in enumerate(columns) if c.indicator]
        flag_offsets = [columns[j].offset + 1 for j in flagged]
        numeric = frame[names]
        # Consecutive output columns take one slice assignment: a scatter over a list of
        # columns cost 5x more (predict, 100 columns: 0.68 against 0.12 us a row).
        first = offsets[0]
        to: slice | list[int] = (
            slice(first, first + len(offsets))
            if offsets == list(range(first, first + len(offsets)))
            else offsets
        )
        n = len(frame)
        centers, scales = self.centers_[index], self.scales_[index]
        for start in range(0, n, NUMERIC_BLOCK_ROWS):
            rows = slice(start, start + NUMERIC_BLOCK_ROWS)
            if isinstance(to, slice) and self._transform_finite_block(
                numeric.iloc[rows], centers, scales, out[rows, to]
            ):
                continue
            # One cast of the rows' block (pandas copies a single float32 block at once): a
            # third of the time of filling X a column at a time; the same values.
            X = numeric.iloc[rows].to_numpy(dtype=np.float64)
            if not X.flags.writeable:  # float64 columns: a read-only view of the frame's own
                X = X.copy()
            if np.isinf(X).any():
                return False
            missing = np.isnan(X)
            np.copyto(X, self.impute_values_[index], where=missing)
            X -= centers
            X /= scales
            if self.clip != "none":
                X = self._clipper(X)
            out[rows, to] = X
            if flagged:
                out[rows, flag_offsets] = missing[:, flagged]
        return True

    def _transform_finite_block(
        self, block: pd.DataFrame, centers: Array, scales: Array, out: NDArray[Any]
    ) -> bool:
        """The usual block, float cells all finite (nothing to impute, indicators stay 0),
        in three passes instead of seven: a float32 sum that is finite rules out NaN and
        infinities; (x - center) computed in float64 as the cast would give it, then
        / scale written straight into `out` (rounded to its dtype as an assignment rounds).
        False, having written nothing, when the block needs the full path."""
        values = block.to_numpy()
        if values.dtype.kind != "f":
            return False
        with np.errstate(over="ignore", invalid="ignore"):
            if not np.isfinite(values.sum()):  # NaN or inf; or a huge sum: the full path
                return False
        X = np.subtract(values, centers, dtype=np.float64)
        if self.clip == "none":
            np.divide(X, scales, out=out, casting="same_kind")
        else:
            X /= scales
            out[...] = self._clipper(X)
        return True

    def _transform_numeric(self, series: pd.Series, column: _Column, out: NDArray[Any]) -> None:
        x = numeric_values(series, column.name)
        missing = np.isnan(x)
        if self.log1p:
            self._log1p(x, missing, column.name)
        i = column.numeric_index
        x[missing] = self.impute_values_[i]
        x -= self.centers_[i]
        x /= self.scales_[i]
        if self.clip != "none":
            x = self._clipper(x)
        out[:, column.offset] = x
        if column.indicator:
            out[:, column.offset + 1] = missing

    def _transform_categorical(self, series: pd.Series, column: _Column, out: NDArray[Any]) -> None:
        # Pooled and unseen levels encode as OTHER_LEVEL, if the column pools.
        other = column.levels.index(OTHER_LEVEL) if OTHER_LEVEL in column.levels else -1
        level = _level_index(series, column, other)
        rows = np.flatnonzero(level >= 0)
        out[rows, column.offset + level[rows]] = 1

    def _transform_frequency(self, series: pd.Series, column: _Column, out: NDArray[Any]) -> None:
        level = _level_index(series, column)
        known = level >= 0
        out[known, column.offset] = column.shares()[level[known]]

    # -- reporting and state

    def describe(self) -> list[dict[str, Any]]:
        """One JSON-able record per input column: how it is imputed, scaled or encoded."""
        records: list[dict[str, Any]] = []
        for c in self._columns:
            if c.kind in LEVEL_KINDS:
                record = level_record({"name": c.name, "kind": c.kind, "levels": c.levels})
                records.append({**record, "outputs": c.output_names()})
                continue
            i = c.numeric_index
            records.append(
                {
                    "column": c.name,
                    "kind": "numeric",
                    "log1p": self.log1p,
                    "impute": self.impute,
                    "impute_value": float(self.impute_values_[i]),
                    "missing_indicator": c.indicator,
                    "scaling": self.scale,
                    "center": float(self.centers_[i]),
                    "scale": float(self.scales_[i]),
                    **({"clip": self.clip} if self.clip != "none" else {}),
                    "outputs": c.output_names(),
                }
            )
        return records

    _ARRAYS: ClassVar[tuple[str, ...]] = PREPROCESSING_ARRAYS

    def to_state(self, prefix: str = "pre") -> tuple[dict[str, Any], dict[str, Array]]:
        """JSON-able metadata and float64 arrays named `<prefix>.impute|center|scale`."""
        meta: dict[str, Any] = {
            "version": STATE_VERSION,
            "options": {
                "impute": self.impute,
                "fill_value": self.fill_value,
                "missing_indicators": self.missing_indicators,
                "scale": self.scale,
                "log1p": self.log1p,
                "max_levels": self.max_levels,
                # Written only when pooling is on, so older model files stay byte-identical.
                **({"min_level_count": self.min_level_count} if self.min_level_count > 1 else {}),
                # Written only when set, so model files without clipping stay byte-identical.
                **({"clip": self.clip} if self.clip != "none" else {}),
                **(
                    {"high_cardinality": self.high_cardinality}
                    if self.high_cardinality != "onehot"
                    else {}
                ),
            },
            "missing_level": MISSING_LEVEL,
            "columns": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "indicator": c.indicator,
                    "levels": c.levels,
                    **({"counts": c.counts} if c.kind == "frequency" else {}),
                }
                for c in self._columns
            ],
        }
        values = (self.impute_values_, self.centers_, self.scales_)
        arrays = {f"{prefix}.{k}": v.copy() for k, v in zip(self._ARRAYS, values, strict=True)}
        return meta, arrays

    @classmethod
    def from_state(
        cls, meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]], prefix: str = "pre"
    ) -> Preprocessor:
        """Rebuild a fitted preprocessor from `to_state` output (as read from a model file)."""
        try:
            if meta["version"] != STATE_VERSION:
                raise ModelFileError(
                    f"Unsupported preprocessing state version {meta['version']!r} "
                    f"(this mlpcli reads version {STATE_VERSION})."
                )
            self = cls(**meta["options"])
            columns = [
                _Column(
                    str(c["name"]),
                    str(c["kind"]),
                    indicator=bool(c["indicator"]),
                    levels=[str(v) for v in c["levels"]],
                    counts=[int(v) for v in c.get("counts", ())],
                )
                for c in meta["columns"]
            ]
            values = [np.asarray(arrays[f"{prefix}.{k}"], dtype=np.float64) for k in cls._ARRAYS]
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"Preprocessing state is incomplete or malformed: {exc}") from None
        numeric = [c for c in columns if c.kind == "numeric"]
        frequency = [c for c in columns if c.kind == "frequency"]
        if (
            any(c.kind not in ("numeric", *LEVEL_KINDS) for c in columns)
            or any(v.shape != (len(numeric),) for v in values)
            or any(
                len(c.counts) != len(c.levels) or min(c.counts, default=0) < 0 for c in frequency
            )
            or any(sum(c.counts) < 1 for c in frequency)
        ):
            raise ModelFileError("Preprocessing state arrays do not match its column list.")
        for i, c in enumerate(numeric):
            c.numeric_index = i
        self._set_columns(columns)
        self.impute_values_, self.centers_, self.scales_ = values
        return self


#: --high-cardinality: how a categorical column with more than --max-levels levels is encoded.
HIGH_CARDINALITY: dict[str, Callable[[Preprocessor, str, Counter[str], int, set[str]], _Column]] = {
    "frequency": Preprocessor._frequency,
    "onehot": Preprocessor._capped,
}
