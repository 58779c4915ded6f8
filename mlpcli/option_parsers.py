"""Parsers of option values: each turns a command-line string, a TOML value or a stored JSON
value into an option's canonical value, raising `UsageError` that names the option (`flag`).

`config`'s fields carry one each; `optimizers` and `schedules` use `number` for their
hyperparameters. No numpy or pandas here: `--help` imports this module.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable
from typing import Any

from mlpcli.errors import UsageError

#: (option name, value) -> canonical value.
Parser = Callable[[str, Any], Any]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_str(name: str, value: Any) -> str:
    return str(value)


def parse_optional_str(name: str, value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise UsageError(f"{flag(name)} must be true or false; got '{value}'.")


def choice(choices: tuple[str, ...]) -> Parser:
    def parse(name: str, value: Any) -> str:
        text = str(value).strip().lower().replace("-", "_")
        if text not in choices:
            raise UsageError(f"{flag(name)} got '{value}'; choose one of: {', '.join(choices)}.")
        return text

    return parse


def number(
    kind: type,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    optional: bool = False,
) -> Parser:
    """A parser for an int or float option within bounds (None for open ends)."""

    def describe() -> str:
        parts = []
        if low is not None:
            parts.append(f"{'>=' if low_inclusive else '>'} {low:g}")
        if high is not None:
            parts.append(f"{'<=' if high_inclusive else '<'} {high:g}")
        return " and ".join(parts)

    def parse(name: str, value: Any) -> Any:
        if optional and (value is None or str(value).strip().lower() in ("", "none", "off")):
            return None
        try:
            result: float = _whole_number(value) if kind is int else float(value)
        except (TypeError, ValueError, ArithmeticError):
            what = "a whole number" if kind is int else "a number"
            raise UsageError(f"{flag(name)} must be {what}; got '{value}'.") from None
        if not math.isfinite(result):
            raise UsageError(f"{flag(name)} must be finite; got '{value}'.")
        too_low = low is not None and (result < low if low_inclusive else result <= low)
        too_high = high is not None and (result > high if high_inclusive else result >= high)
        if too_low or too_high:
            raise UsageError(f"{flag(name)} must be {describe()}; got {value}.")
        return result

    return parse


def _whole_number(value: Any) -> int:
    """An exact integer from an int, a whole float, or text ("12", "1e3"): never through a
    float, which would round 2**53 + 1 (a seed) to 2**53."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    exact = decimal.Decimal(str(value).strip())
    if not exact.is_finite() or exact != exact.to_integral_value() or abs(exact.adjusted()) > 4300:
        raise ValueError(value)
    return int(exact)


def parse_hidden(name: str, value: Any) -> tuple[int, ...]:
    """`64,32` -> (64, 32); an empty string or list means no hidden layer."""
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        text = str(value).strip()
        items = [] if text in ("", "none") else text.split(",")
    sizes = []
    for item in items:
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise UsageError(
                f"{flag(name)} takes positive layer sizes separated by commas, e.g. 64,32 "
                f"(empty for no hidden layer); got '{value}'."
            )
        sizes.append(int(item))
    return tuple(sizes)


def parse_batch_size(name: str, value: Any) -> int | str:
    """A positive whole number, `full` for full-batch training, or `auto`."""
    text = str(value).strip().lower()
    if text in ("full", "auto"):
        return text
    return int(number(int, 1)(name, value))


def parse_class_weight(name: str, value: Any) -> str | dict[str, float] | None:
    """`none`, `balanced`, or explicit `label=weight,label=weight`."""
    if value is None or isinstance(value, dict):
        return None if not value else {str(k): float(v) for k, v in value.items()}
    text = str(value).strip()
    if text.lower() in ("", "none"):
        return None
    if text.lower() == "balanced":
        return "balanced"
    weights: dict[str, float] = {}
    for item in text.split(","):
        label, sep, weight = item.rpartition("=")
        if not sep or not label:
            raise UsageError(
                f"{flag(name)} takes 'balanced' or label=weight pairs like 'a=1,b=3'; "
                f"got '{value}'."
            )
        weights[label.strip()] = number(float, 0.0, low_inclusive=False)(name, weight)
    return weights


def parse_list(name: str, value: Any) -> tuple[str, ...]:
    """Repeatable options; each value may also hold comma-separated names."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return tuple(out)


def parse_raw_list(name: str, value: Any) -> tuple[str, ...]:
    """Repeatable options whose values are kept whole (column names may contain commas)."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def parse_sep(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    aliases = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "space": " ", "pipe": "|"}
    text = aliases.get(str(value).lower(), str(value))
    if len(text) != 1:
        raise UsageError(
            f"{flag(name)} must be one character (or tab, comma, semicolon, space, pipe); "
            f"got '{value}'."
        )
    return text


def parse_threshold(name: str, value: Any) -> float | str | None:
    """A probability in [0, 1], `auto` (chosen on the validation rows), or none (0.5)."""
    text = "" if value is None else str(value).strip().lower()
    if text in ("", "none"):
        return None
    if text == "auto":
        return "auto"
    try:
        return float(number(float, 0.0, 1.0)(name, value))
    except UsageError:
        raise UsageError(
            f"{flag(name)} takes a probability in [0, 1] or 'auto'; got '{value}'."
        ) from None


def parse_regex(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        re.compile(str(value))
    except re.error as exc:
        raise UsageError(f"{flag(name)} is not a valid regular expression: {exc}.") from None
    return str(value)


def parse_decimal(name: str, value: Any) -> str:
    text = str(value)
    if text not in (".", ","):
        raise UsageError(f"{flag(name)} must be '.' or ','; got '{value}'.")
    return text


def parse_thousands(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value)
    if len(text) != 1 or text.isalnum():
        raise UsageError(f"{flag(name)} must be one character such as ',' or \"'\"; got '{value}'.")
    return text
