"""Choosing target, ID and feature columns, and checking their types: every problem is a
one-line error naming the column and the option that changes the decision, or (where a peer
would go on) a warning that `--strict` turns into an error."""

from __future__ import annotations

import difflib
import fnmatch
import logging
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlpcli.data.read import token_counts
from mlpcli.data.sniff import DECIMAL_COMMA, first_row, where
from mlpcli.errors import (
    DataError,
    UsageError,
    warn_or_fail,
)
from mlpcli.limits import shorten

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mlpcli")


#: A text column is "numeric-looking" when at least this share of its values parse as numbers;
#: the rest are then junk to report rather than categories to one-hot encode.
NUMERIC_SHARE = 0.9


#: A text column whose cells are at least this share numbers is "mostly numeric": it is still
#: categorical, but the warning names the other tokens (missing-value markers, typos).
MOSTLY_NUMERIC = 0.5


#: A numeric column named like an ID is one when at least this share of its values differ.
ID_DISTINCT_SHARE = 0.9


#: Feature magnitudes above this are reported: they overflow float32 arithmetic in training.
MAX_ABS_VALUE = 1e30


#: Column names (lower-cased, punctuation removed) that mark a sample identifier.
ID_NAMES = frozenset(
    {
        "id",
        "sample",
        "sampleid",
        "samplename",
        "mouseid",
        "patient",
        "patientid",
        "subject",
        "subjectid",
        "barcode",
        "cellline",
        "cellid",
        "specimen",
        "accession",
        "uuid",
        "name",
    }
)


@dataclass
class ColumnSelection:
    """Which columns are targets, ids and features; `categorical` is a subset of `features`."""

    targets: list[str]
    ids: list[str]
    features: list[str]
    categorical: list[str]

    @property
    def numeric(self) -> list[str]:
        """Features that are not categorical, in table order."""
        categorical = set(self.categorical)
        return [name for name in self.features if name not in categorical]


def _is_pattern(name: str) -> bool:
    return any(char in name for char in "*?[")


def _suggest(name: str, columns: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    lowered = [c for c in columns if c.lower() == name.lower() and c not in close]
    close = lowered + close
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
    return f"columns are: {shown}"


def _missing_column(kind: str, name: str, columns: Sequence[str], source: str) -> DataError:
    return DataError(f"{kind} column '{name}' not found{where(source)}; {_suggest(name, columns)}")


def _expand(names: Sequence[str], columns: Sequence[str], option: str, source: str) -> list[str]:
    """Names and fnmatch patterns to matching columns, in table order; unmatched is an error."""
    chosen: set[str] = set()
    for name in names:
        if _is_pattern(name):
            matched = fnmatch.filter(columns, name)
            if not matched:
                raise DataError(
                    f"{option} pattern '{name}' matches no column{where(source)}; "
                    f"{_suggest(name.strip('*?[]'), columns)}"
                )
            chosen.update(matched)
        elif name in columns:
            chosen.add(name)
        else:
            raise _missing_column(option, name, columns, source)
    return [c for c in columns if c in chosen]


def _looks_like_id_name(name: str) -> bool:
    compact = re.sub(r"[^a-z0-9]", "", name.lower())
    return compact in ID_NAMES or compact.endswith("id") or name.lower().endswith("_id")


def _is_unique_text(column: pd.Series) -> bool:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        return False
    values = column.dropna()
    return len(values) > 1 and values.is_unique


def check_numeric(column: pd.Series, name: str, source: str) -> None:
    """Inf and absurd magnitudes break float32 training; name the first one."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_integer_dtype(column):
        return
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values) | (np.abs(values) > MAX_ABS_VALUE)
    if bad.any():
        row = first_row(bad)
        value = values[row - 1]
        what = (
            "an infinite value (or one beyond float32's range)"
            if np.isinf(value)
            else (f"the value {value:.3g} (|x| > {MAX_ABS_VALUE:.0e})")
        )
        raise DataError(
            f"Column '{name}'{where(source)} has {what} in data row {row}; fix or blank the "
            f"cell, or leave the column out with --drop {shlex.quote(name)}."
        )


_THOUSANDS = re.compile(r"[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")


@dataclass(frozen=True)
class TextFinding:
    """A text column that holds numbers the reading did not parse: what was found, with the
    count, the first offending token and its data row, for one message over all such columns."""

    name: str
    count: int
    n_present: int
    token: str
    row: int
    tokens: str = ""  # `'other' x12, 'n/d' x2`, for mostly-numeric columns


def _quoted(findings: Sequence[TextFinding], option: str) -> str:
    return " ".join(f"{option} {shlex.quote(f.name)}" for f in findings)


def _where_each(findings: Sequence[TextFinding]) -> str:
    return "; ".join(
        f"'{f.name}': {f.count} of {f.n_present}, e.g. '{f.token}' in data row {f.row}"
        for f in findings
    )


def _thousands_message(findings: Sequence[TextFinding], source: str) -> str:
    if len(findings) == 1:
        f = findings[0]
        return (
            f"Column '{f.name}'{where(source)} holds numbers with a thousands separator "
            f"('{f.token}' in data row {f.row}), so it is read as categorical; pass "
            "--thousands , to read them as numbers."
        )
    return (
        f"{len(findings)} columns{where(source)} hold numbers with a thousands separator "
        f"({_where_each(findings)}), so they are read as categorical; pass --thousands , to "
        "read them as numbers."
    )


def _decimal_comma_message(findings: Sequence[TextFinding], source: str) -> str:
    if len(findings) == 1:
        f = findings[0]
        return (
            f"Column '{f.name}'{where(source)} holds numbers with a decimal comma "
            f"('{f.token}' in data row {f.row}); pass --decimal , "
            f"(or --categorical {shlex.quote(f.name)} to keep it as text)."
        )
    return (
        f"{len(findings)} columns{where(source)} hold numbers with a decimal comma "
        f"({_where_each(findings)}); pass --decimal , (or "
        f"{_quoted(findings, '--categorical')} to keep them as text)."
    )


def _mostly_numeric_message(findings: Sequence[TextFinding], source: str) -> str:
    if len(findings) == 1:
        f = findings[0]
        return (
            f"Column '{f.name}'{where(source)} is mostly numeric but {f.count} of its "
            f"{f.n_present} values are not numbers ({f.tokens}; first in data row {f.row}), so "
            f"it is read as categorical. If '{f.token}' marks a missing value, add it with "
            f"--na-values {shlex.quote(f.token)} (the list replaces the default tokens); or pass "
            f"--numeric {shlex.quote(f.name)} to read such cells as missing."
        )
    each = "; ".join(
        f"'{f.name}': {f.count} of {f.n_present} ({f.tokens}; first in data row {f.row})"
        for f in findings
    )
    tokens = " ".join(
        f"--na-values {shlex.quote(t)}" for t in dict.fromkeys(f.token for f in findings)
    )
    return (
        f"{len(findings)} columns{where(source)} are mostly numeric but hold values that are not "
        f"numbers ({each}), so they are read as categorical. If those tokens mark missing "
        f"values, add them with {tokens} (the list replaces the default tokens); or pass "
        f"{_quoted(findings, '--numeric')} to read such cells as missing."
    )


@dataclass(frozen=True)
class TextCheck:
    """One way a text column can hold numbers: its single message over every such column, and
    whether going on is a peer's choice (a warning, an error under --strict) or wrong."""

    message: Callable[[Sequence[TextFinding], str], str]
    refuse: bool = False


#: The checks, in the order their messages are given (an error first stops the others).
TEXT_CHECKS: dict[str, TextCheck] = {
    "decimal_comma": TextCheck(_decimal_comma_message, refuse=True),
    "thousands": TextCheck(_thousands_message),
    "mostly_numeric": TextCheck(_mostly_numeric_message),
}


def _text_finding(column: pd.Series, name: str) -> tuple[str, TextFinding] | None:
    """Which check a text column fails (a key of TEXT_CHECKS) and what it holds, or None:
    numbers with separators, or numbers and a few other tokens, stay categorical."""
    import pandas as pd

    present = column.notna().to_numpy()
    n_present = int(present.sum())
    texts = column.astype("str")
    numbers = pd.to_numeric(column, errors="coerce").notna().to_numpy()

    def finding(bad: np.ndarray, **extra: str) -> TextFinding:
        row = first_row(bad)
        token = shorten(texts.iloc[row - 1])
        return TextFinding(name, int(bad.sum()), n_present, token, row, **extra)

    thousands = texts.str.fullmatch(_THOUSANDS.pattern).fillna(False).to_numpy(bool)
    if thousands.any() and (thousands | numbers | ~present).all():
        return "thousands", finding(thousands)
    decimal_comma = texts.str.fullmatch(DECIMAL_COMMA.pattern).fillna(False).to_numpy(bool)
    if n_present and int(decimal_comma.sum()) >= NUMERIC_SHARE * n_present:
        return "decimal_comma", finding(decimal_comma)
    junk = present & ~numbers
    if n_present and int(numbers.sum()) >= MOSTLY_NUMERIC * n_present and junk.any():
        return "mostly_numeric", finding(junk, tokens=token_counts(column[junk]))
    return None


def check_texts(
    frame: pd.DataFrame, names: Sequence[str], source: str = "", strict: bool = False
) -> None:
    """All text columns that fail one check are named in one message (with counts, a token and
    its row each): an error where going on would be wrong, else a warning (error if strict)."""
    found: dict[str, list[TextFinding]] = {}
    for name in names:
        result = _text_finding(frame[name], name)
        if result is not None:
            found.setdefault(result[0], []).append(result[1])
    for key, check in TEXT_CHECKS.items():
        if key not in found:
            continue
        message = check.message(found[key], source)
        if check.refuse:
            raise DataError(message)
        warn_or_fail(message, strict)


#: Rows `_is_numeric_id` looks at first: a value with a fraction there rules the column out.
ID_PROBE_ROWS = 100


def _is_numeric_id(column: pd.Series, name: str) -> bool:
    """Integers that name rows: a column called like an ID with (almost) all values distinct,
    or any column holding exactly the row numbers 1..n (or 0..n-1) in some order."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return False
    # A measured feature shows a fraction in its first rows: that alone decides, as the whole
    # column would (train on 100k x 100 spent 0.5 s here reading every column whole).
    head = column.iloc[:ID_PROBE_ROWS].to_numpy(dtype=np.float64, na_value=np.nan)
    head = head[~np.isnan(head)]
    if not np.all(np.isfinite(head)) or np.any(np.mod(head, 1.0)):
        return False
    values = column.dropna().to_numpy(dtype=np.float64)
    if len(values) < 2 or not np.all(np.isfinite(values)) or np.any(np.mod(values, 1.0)):
        return False
    n_distinct = len(np.unique(values))
    if _looks_like_id_name(name):
        return n_distinct >= ID_DISTINCT_SHARE * len(values)
    return (
        len(values) == len(column) >= 20
        and n_distinct == len(values)
        and values.max() - values.min() == len(values) - 1
    )


def select_columns(
    frame: pd.DataFrame,
    targets: Sequence[str],
    ids: Sequence[str] = (),
    features: Sequence[str] | None = None,
    drop: Sequence[str] = (),
    categorical: Sequence[str] = (),
    source: str = "",
    *,
    numeric: Sequence[str] = (),
    strict: bool = False,
) -> ColumnSelection:
    """Choose target, id and feature columns and check the features are usable.

    `features`, `drop`, `categorical` and `numeric` take names and fnmatch patterns. By default
    every column other than targets, ids and dropped ones is a feature, except unique text
    columns named like sample IDs and integer columns that look like IDs or row numbers, which
    are left out with a warning, and entirely empty columns, dropped with one warning for all.
    With `strict` those warnings (and the mostly-numeric ones) are errors.
    """
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    targets = list(dict.fromkeys(targets))
    ids = list(dict.fromkeys(ids))
    if not targets:
        raise UsageError("Name the column to predict with --target.")
    for name in targets:
        if name not in columns:
            raise _missing_column("Target", name, columns, source)
    for name in ids:
        if name not in columns:
            raise _missing_column("--id", name, columns, source)
    for name in targets:
        if name in ids:
            raise UsageError(f"Column '{name}' is given both as --target and as --id.")
        if name in drop:
            raise UsageError(f"Column '{name}' is given both as --target and in --drop.")
        if features is not None and name in features:
            raise UsageError(
                f"Column '{name}' is given both as --target and in --features; a target cannot "
                "be its own input."
            )
    dropped = set(_expand(drop, columns, "--drop", source))
    wanted = set(columns if features is None else _expand(features, columns, "--features", source))
    named_categorical = set(_expand(categorical, columns, "--categorical", source))
    named_numeric = set(_expand(numeric, columns, "--numeric", source))
    excluded = set(targets) | set(ids) | dropped
    chosen = [c for c in columns if c in wanted and c not in excluded]

    # Exact names the user typed are kept as given; only defaults and glob matches are vetted.
    explicit = {n for n in (*(features or ()), *categorical, *numeric) if not _is_pattern(n)}
    unique_text = {n for n in chosen if n not in explicit and _is_unique_text(frame[n])}
    kept = []
    for name in chosen:
        if name in unique_text and _looks_like_id_name(name):
            warn_or_fail(
                f"Column '{name}'{where(source)} looks like a sample ID (a different text "
                f"value in every row), so it is not used as a feature; pass --id "
                f"{shlex.quote(name)} to say so.",
                strict,
            )
            continue
        if name not in explicit and _is_numeric_id(frame[name], name):
            n_distinct = frame[name].nunique()
            warn_or_fail(
                f"Column '{name}'{where(source)} looks like a numeric sample ID ({n_distinct} "
                f"distinct integers in {int(frame[name].notna().sum())} rows), so it is not "
                f"used as a feature; pass --id {shlex.quote(name)} to carry it into "
                f"predictions, or --numeric {shlex.quote(name)} to use it as a feature.",
                strict,
            )
            continue
        kept.append(name)
    empty = [name for name in kept if frame[name].isna().all()]
    if empty:
        warn_or_fail(
            f"{len(empty)} column(s){where(source)} are entirely missing and are left out: "
            f"{', '.join(repr(n) for n in empty)}.",
            strict,
        )
        kept = [name for name in kept if name not in set(empty)]
    if not kept:
        raise DataError(
            f"No feature columns left{where(source)} after setting aside targets, ids and "
            "--drop; check --features and --drop."
        )

    texts = []
    for name in kept:
        if pd.api.types.is_numeric_dtype(frame[name]):
            check_numeric(frame[name], name, source)
        elif name not in named_categorical and name not in named_numeric:
            texts.append(name)
    check_texts(frame, texts, source, strict)
    lonely = [name for name in kept if name in unique_text]
    if lonely and len(frame) > 20:
        shown = ", ".join(f"'{n}'" for n in lonely[:5]) + (", ..." if len(lonely) > 5 else "")
        log.warning(
            "Text column(s) %s%s hold a different value in every row, so as categorical "
            "features they cannot generalise; consider --drop or --id.",
            shown,
            where(source),
        )
    categorical_features = [
        c for c in kept if c in named_categorical or not pd.api.types.is_numeric_dtype(frame[c])
    ]
    if len(kept) > len(frame):
        log.warning(
            "%s has more features (%d) than rows (%d); expect overfitting, consider "
            "--features or --drop to use fewer columns.",
            f"'{source}'" if source else "The table",
            len(kept),
            len(frame),
        )
    return ColumnSelection(
        targets=targets, ids=ids, features=kept, categorical=categorical_features
    )
