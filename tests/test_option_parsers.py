"""Option parsers: canonical values from command-line text, TOML and stored JSON alike."""

from __future__ import annotations

from typing import Any

import pytest

from mlpcli.errors import UsageError
from mlpcli.option_parsers import (
    choice,
    number,
    parse_batch_size,
    parse_bool,
    parse_class_weight,
    parse_hidden,
    parse_list,
    parse_sep,
    parse_threshold,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("ON", True), (1, True), ("off", False), ("0", False), (False, False)],
)
def test_parse_bool_reads_the_usual_spellings(value: Any, expected: bool) -> None:
    assert parse_bool("batchnorm", value) is expected


def test_parse_bool_names_the_option() -> None:
    with pytest.raises(UsageError, match=r"^--batch-norm must be true or false; got 'maybe'\.$"):
        parse_bool("batch_norm", "maybe")


def test_choice_folds_case_and_dashes() -> None:
    parse = choice(("robust_range", "none"))
    assert parse("scale", "Robust-Range") == "robust_range"
    with pytest.raises(UsageError, match=r"--scale got 'x'; choose one of: robust_range, none\."):
        parse("scale", "x")


def test_number_bounds_and_exact_whole_numbers() -> None:
    seed = number(int, 0)
    assert seed("seed", str(2**53 + 1)) == 2**53 + 1  # never rounded through a float
    assert seed("seed", "1e3") == 1000
    with pytest.raises(UsageError, match=r"--seed must be a whole number; got '1\.5'"):
        seed("seed", "1.5")
    dropout = number(float, 0.0, 1.0, high_inclusive=False)
    with pytest.raises(UsageError, match=r"--dropout must be >= 0 and < 1; got 1"):
        dropout("dropout", 1)
    with pytest.raises(UsageError, match=r"--dropout must be finite"):
        dropout("dropout", "nan")
    assert number(float, optional=True)("clip_norm", "off") is None


def test_parse_hidden_and_batch_size() -> None:
    assert parse_hidden("hidden", "64, 32") == (64, 32)
    assert parse_hidden("hidden", "") == ()
    with pytest.raises(UsageError, match=r"--hidden takes positive layer sizes"):
        parse_hidden("hidden", "64,0")
    assert parse_batch_size("batch_size", "FULL") == "full"
    assert parse_batch_size("batch_size", "128") == 128


def test_parse_class_weight_pairs_and_keywords() -> None:
    assert parse_class_weight("class_weight", "balanced") == "balanced"
    assert parse_class_weight("class_weight", "a=1,b=3") == {"a": 1.0, "b": 3.0}
    assert parse_class_weight("class_weight", "none") is None
    with pytest.raises(UsageError, match=r"label=weight pairs"):
        parse_class_weight("class_weight", "a:1")


def test_parse_list_splits_commas_and_parse_sep_knows_aliases() -> None:
    assert parse_list("drop", ["a,b", "c"]) == ("a", "b", "c")
    assert parse_sep("sep", "tab") == "\t"
    with pytest.raises(UsageError, match=r"--sep must be one character"):
        parse_sep("sep", "::")


def test_parse_threshold() -> None:
    assert parse_threshold("threshold", "0.3") == 0.3
    assert parse_threshold("threshold", "AUTO") == "auto"
    assert parse_threshold("threshold", None) is None
    with pytest.raises(UsageError, match=r"probability in \[0, 1\] or 'auto'; got '2'"):
        parse_threshold("threshold", "2")
