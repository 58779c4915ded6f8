"""Preprocessing: fitted on training rows only, hand-computed statistics, exact round trips."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import save_and_load
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpcli import preprocessing
from mlpcli.errors import DataError, ModelFileError, UsageError
from mlpcli.numeric_rules import IMPUTERS, SCALERS
from mlpcli.preprocessing import MISSING_LEVEL, Preprocessor

NAN = np.nan


@pytest.fixture
def frame() -> pd.DataFrame:
    """Numeric with a gap, a constant-free second numeric, a string categorical with a gap."""
    return pd.DataFrame(
        {
            "sample": ["s1", "s2", "s3", "s4", "s5"],
            "age": [30.0, NAN, 50.0, 40.0, 20.0],
            "dose": [1, 2, 3, 4, 10],
            "batch": ["b2", "b1", None, "b2", "b1"],
        }
    )


FEATURES = ["age", "dose", "batch"]


# --- numeric columns ----------------------------------------------------------------------------

# x = [1, 2, NaN, 10]: the imputed value by hand.
IMPUTED = {"median": 2.0, "mean": 13.0 / 3.0, "constant": -7.0}


@pytest.mark.parametrize("impute", sorted(IMPUTERS), ids=str)
def test_imputation_values_by_hand(impute: str) -> None:
    data = pd.DataFrame({"x": [1.0, 2.0, NAN, 10.0]})
    pre = Preprocessor(impute=impute, fill_value=-7.0, scale="none").fit(data, ["x"])
    X = pre.transform(data, dtype=np.float64)
    np.testing.assert_allclose(X[:, 0], [1.0, 2.0, IMPUTED[impute], 10.0])
    assert pre.describe()[0]["impute_value"] == pytest.approx(IMPUTED[impute])


# x = [1, 2, 3, 10]: mean 4, std sqrt(12.5); min 1, range 9; median 2.5, q25 1.75, q75 4.75.
SCALED = {
    "standard": (np.array([-3.0, -2.0, -1.0, 6.0]) / np.sqrt(12.5), 4.0, np.sqrt(12.5)),
    "minmax": (np.array([0.0, 1.0, 2.0, 9.0]) / 9.0, 1.0, 9.0),
    "robust": (np.array([-1.5, -0.5, 0.5, 7.5]) / 3.0, 2.5, 3.0),
    "robust_range": (np.array([-1.5, -0.5, 0.5, 7.5]) / 3.0, 2.5, 3.0),
    "none": (np.array([1.0, 2.0, 3.0, 10.0]), 0.0, 1.0),
}


@pytest.mark.parametrize("scale", sorted(SCALERS), ids=str)
def test_scaling_by_hand(scale: str) -> None:
    data = pd.DataFrame({"x": [1, 2, 3, 10]})
    pre = Preprocessor(scale=scale).fit(data, ["x"])
    expected, center, spread = SCALED[scale]
    np.testing.assert_allclose(pre.transform(data, dtype=np.float64)[:, 0], expected)
    record = pre.describe()[0]
    assert (record["center"], record["scale"]) == (pytest.approx(center), pytest.approx(spread))


def test_scaling_statistics_come_from_training_rows_only() -> None:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(5, 2, 200), "y": rng.exponential(3, 200)})
    data.loc[150:, "x"] += 100.0  # validation rows from a shifted distribution
    train, valid = data.iloc[:150], data.iloc[150:]
    pre = Preprocessor().fit(train, ["x", "y"])
    np.testing.assert_allclose(pre.centers_, train.mean().to_numpy())
    np.testing.assert_allclose(pre.scales_, train.std(ddof=0).to_numpy())
    X_valid = pre.transform(valid, dtype=np.float64)
    expected = (valid.to_numpy() - train.mean().to_numpy()) / train.std(ddof=0).to_numpy()
    np.testing.assert_allclose(X_valid, expected)
    assert X_valid[:, 0].mean() > 10  # the shift shows: validation rows were not used to scale


def test_imputation_uses_training_rows_only() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, NAN]})
    valid = pd.DataFrame({"x": [NAN, 100.0, 200.0]})
    pre = Preprocessor(scale="none").fit(train, ["x"])
    assert pre.transform(valid, dtype=np.float64)[0, 0] == 2.0


def test_log1p_applies_before_imputation_statistics() -> None:
    data = pd.DataFrame({"counts": [0.0, np.e - 1, NAN, np.e**3 - 1]})
    pre = Preprocessor(log1p=True, scale="none").fit(data, ["counts"])
    np.testing.assert_allclose(pre.transform(data, dtype=np.float64)[:, 0], [0, 1, 1, 3])


def test_log1p_rejects_negative_values_naming_column_and_value() -> None:
    data = pd.DataFrame({"counts": [1.0, 2.0, -3.5, -1.0]})
    with pytest.raises(DataError, match=r"'counts'.*-3\.5.*--log1p"):
        Preprocessor(log1p=True).fit(data, ["counts"])
    pre = Preprocessor(log1p=True).fit(data.iloc[:2], ["counts"])
    with pytest.raises(DataError, match=r"'counts'.*-3\.5"):
        pre.transform(data)


def test_missing_indicators_only_for_columns_with_training_gaps(frame: pd.DataFrame) -> None:
    pre = Preprocessor(missing_indicators=True).fit(frame, ["age", "dose"])
    assert pre.feature_names_out == ["age", "age__missing", "dose"]
    later = pd.DataFrame({"age": [NAN, 33.0], "dose": [NAN, 1.0]})
    X = pre.transform(later, dtype=np.float64)
    np.testing.assert_array_equal(X[:, 1], [1.0, 0.0])
    # dose had no gaps in training: no indicator, but a gap later is still imputed (median 3).
    assert X[0, 2] == pytest.approx((3.0 - 4.0) / np.std([1, 2, 3, 4, 10]))


def test_constant_column_scaled_by_one_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    data = pd.DataFrame({"flat": [0.1] * 7, "ok": range(7)})
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        pre = Preprocessor().fit(data, ["flat", "ok"])
    assert "flat" in caplog.text and "'ok'" not in caplog.text
    X = pre.transform(data)
    assert np.isfinite(X).all()
    np.testing.assert_allclose(X[:, 0], 0.0, atol=1e-7)


def test_column_without_training_values_is_an_error() -> None:
    data = pd.DataFrame({"empty": [NAN, NAN], "x": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"'empty'.*--drop"):
        Preprocessor().fit(data, ["empty", "x"])


# --- categorical columns ------------------------------------------------------------------------


def test_one_hot_with_sorted_levels_and_missing_level(frame: pd.DataFrame) -> None:
    pre = Preprocessor().fit(frame, ["batch"])
    assert pre.feature_names_out == ["batch=b1", "batch=b2", f"batch={MISSING_LEVEL}"]
    X = pre.transform(frame)
    expected = [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    np.testing.assert_array_equal(X, expected)


def test_unseen_level_encodes_as_zeros_and_is_logged_once(
    frame: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    pre = Preprocessor().fit(frame.dropna(subset=["batch"]), ["batch"])
    later = pd.DataFrame({"batch": ["b9", "b1", "b9", None, "b8"]})
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        X = pre.transform(later)
    np.testing.assert_array_equal(X, [[0, 0], [1, 0], [0, 0], [0, 0], [0, 0]])
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "'batch'" in message and "4 row(s)" in message and "'b9'" in message


def test_levels_beyond_max_levels_pool_into_other(caplog: pytest.LogCaptureFixture) -> None:
    data = pd.DataFrame({"site": [f"s{i:02d}" for i in range(12)] + ["s00", "s01"]})
    with caplog.at_level(logging.WARNING, logger="mlpcli"):
        pre = Preprocessor(max_levels=10).fit(data, ["site"])
    assert pre.feature_names_out == [f"site=s{i:02d}" for i in range(9)] + ["site=__other__"]
    assert [r.getMessage() for r in caplog.records] == [
        "Categorical column 'site' has 12 levels; 3 beyond the 9 most frequent (--max-levels 10)"
        " are pooled into one level '__other__' (3 rows, e.g. 's09' in 1)."
    ]
    # Pooled and unseen levels both encode as __other__.
    X = pre.transform(pd.DataFrame({"site": ["s11", "new", "s00"]}))
    np.testing.assert_array_equal(X[:, -1], [1, 1, 0])
    with pytest.raises(DataError, match=r"--max-levels 10.*because of --strict"):
        Preprocessor(max_levels=10, strict=True).fit(data, ["site"])
    assert Preprocessor(max_levels=12).fit(data, ["site"]).n_features_out == 12


def test_rare_levels_pool_only_when_two_or_more() -> None:
    two_rare = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 5 + ["x", "y"]})
    pre = Preprocessor(min_level_count=2).fit(two_rare, ["c"])
    assert pre.feature_names_out == ["c=a", "c=b", "c=__other__"]
    one_rare = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 5 + ["x"]})
    assert Preprocessor(min_level_count=2).fit(one_rare, ["c"]).n_features_out == 3


def test_numeric_column_named_categorical_matches_int_and_float() -> None:
    train = pd.DataFrame({"plate": [1, 2, 2, 3]})
    pre = Preprocessor().fit(train, ["plate"], categorical=["plate"])
    assert pre.feature_names_out == ["plate=1", "plate=2", "plate=3"]
    later = pd.DataFrame({"plate": [3.0, 1.0, NAN]})  # read as float because of the gap
    np.testing.assert_array_equal(pre.transform(later), [[0, 0, 1], [1, 0, 0], [0, 0, 0]])


# --- matching columns at transform time ---------------------------------------------------------


def test_shuffled_columns_and_extra_columns_give_identical_transform(frame: pd.DataFrame) -> None:
    pre = Preprocessor(missing_indicators=True).fit(frame, FEATURES)
    shuffled = frame[["batch", "sample", "dose", "age"]].assign(extra=1.0)
    np.testing.assert_array_equal(pre.transform(shuffled), pre.transform(frame))


def test_missing_columns_are_all_listed(frame: pd.DataFrame) -> None:
    pre = Preprocessor().fit(frame, FEATURES)
    with pytest.raises(DataError, match=r"2 feature column\(s\) missing.*'age', 'batch'"):
        pre.transform(frame[["dose"]])


def test_numeric_column_arriving_as_strings_names_first_bad_value(frame: pd.DataFrame) -> None:
    pre = Preprocessor().fit(frame, FEATURES)
    later = frame.assign(age=pd.Series(["31", "oops", None, "n/a", "44"]))
    with pytest.raises(DataError, match=r"'age' must be numeric but holds 'oops' \(2 non-numeric"):
        pre.transform(later)
    parsed = pre.transform(frame.assign(age=pd.Series(["30", None, "50", "40", "20"])))
    np.testing.assert_array_equal(parsed, pre.transform(frame))


def test_unknown_categorical_name_and_bad_options() -> None:
    data = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(UsageError, match=r"--categorical.*'nope'"):
        Preprocessor().fit(data, ["x"], categorical=["nope"])
    with pytest.raises(UsageError, match=r"Unknown scaling 'zscore'; choose one of"):
        Preprocessor(scale="zscore")
    with pytest.raises(UsageError, match=r"Unknown imputation 'knn'; choose one of"):
        Preprocessor(impute="knn")


def test_output_is_one_c_contiguous_array_of_requested_dtype(frame: pd.DataFrame) -> None:
    pre = Preprocessor().fit(frame, FEATURES)
    X32, X64 = pre.transform(frame), pre.transform(frame, dtype=np.float64)
    assert X32.dtype == np.float32 and X64.dtype == np.float64
    assert X32.flags.c_contiguous and X32.shape == (5, len(pre.feature_names_out))
    np.testing.assert_allclose(X32, X64, rtol=1e-6)


def test_transform_leaves_the_input_frame_alone(frame: pd.DataFrame) -> None:
    before = frame.copy()
    Preprocessor(log1p=True).fit_transform(frame, ["dose", "age"])
    pd.testing.assert_frame_equal(frame, before)


# --- describe and state -------------------------------------------------------------------------


def test_describe_records_each_input_column(frame: pd.DataFrame) -> None:
    pre = Preprocessor(missing_indicators=True).fit(frame, FEATURES)
    age, dose, batch = pre.describe()
    assert age["kind"] == "numeric" and age["impute_value"] == 35.0 and age["missing_indicator"]
    assert dose["center"] == 4.0 and dose["scaling"] == "standard"
    assert batch == {
        "column": "batch",
        "kind": "categorical",
        "encoding": "one-hot",
        "levels": ["b1", "b2", MISSING_LEVEL],
        "outputs": ["batch=b1", "batch=b2", f"batch={MISSING_LEVEL}"],
    }
    json.dumps(pre.describe())


@pytest.mark.parametrize("scale", sorted(SCALERS), ids=str)
def test_state_round_trip_gives_identical_transform(frame: pd.DataFrame, scale: str) -> None:
    pre = Preprocessor(missing_indicators=True, scale=scale, log1p=True).fit(frame, FEATURES)
    meta, arrays = pre.to_state()
    assert sorted(arrays) == ["pre.center", "pre.impute", "pre.scale"]
    assert all(a.dtype == np.float64 for a in arrays.values())
    rebuilt = Preprocessor.from_state(*save_and_load(meta, arrays))
    later = frame.assign(batch=pd.Series(["b1", "zz", None, "b2", "b2"]), age=[NAN, 1, 2, 3, 4])
    np.testing.assert_array_equal(rebuilt.transform(later), pre.transform(later))
    assert rebuilt.feature_names_out == pre.feature_names_out
    assert rebuilt.describe() == pre.describe()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), min_size=2, max_size=30),
    st.sampled_from(sorted(SCALERS)),
    st.sampled_from(sorted(IMPUTERS)),
)
def test_round_trip_and_finiteness_for_any_numeric_column(
    values: list[float | None], scale: str, impute: str
) -> None:
    data = pd.DataFrame({"x": pd.array(values, dtype="Float64")})
    if data["x"].isna().all() and impute != "constant":
        return
    pre = Preprocessor(scale=scale, impute=impute, missing_indicators=True).fit(data, ["x"])
    X = pre.transform(data, dtype=np.float64)
    assert np.isfinite(X).all()
    rebuilt = Preprocessor.from_state(*save_and_load(*pre.to_state()))
    np.testing.assert_array_equal(rebuilt.transform(data, dtype=np.float64), X)


# --- RealMLP-TD's numeric preprocessing: robust_range scaling and smooth clipping ---------------


def test_robust_range_falls_back_to_half_the_range_when_the_iqr_is_zero() -> None:
    """x = [0, 0, 0, 0, 0, 8]: median 0, q25 = q75 = 0, so scale (8 - 0) / 2 = 4 (pytabkit)."""
    data = pd.DataFrame({"x": [0.0, 0.0, 0.0, 0.0, 0.0, 8.0]})
    pre = Preprocessor(scale="robust_range").fit(data, ["x"])
    assert (pre.centers_[0], pre.scales_[0]) == (0.0, 4.0)
    np.testing.assert_allclose(pre.transform(data, dtype=np.float64)[:, 0], [0, 0, 0, 0, 0, 2.0])


def test_smooth_clip_by_hand_after_scaling_with_training_statistics() -> None:
    """u = (x - 2.5) / 3 from the training rows, then u / sqrt(1 + (u/3)^2): u = 4 -> 4 / (5/3)."""
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 10.0]})
    test = pd.DataFrame({"x": [14.5, 2.5, -9.5]})  # u = 4, 0, -4
    pre = Preprocessor(scale="robust_range", clip="smooth").fit(train, ["x"])
    np.testing.assert_allclose(pre.transform(test, dtype=np.float64)[:, 0], [2.4, 0.0, -2.4])
    assert pre.describe()[0]["clip"] == "smooth"


def test_smooth_clip_derivative_matches_central_difference(
    rng: np.random.Generator, central_difference, relative_error
) -> None:
    from mlpcli.numeric_rules import CLIPPERS

    clip = CLIPPERS["smooth"]()
    x = rng.uniform(-20.0, 20.0, size=12)
    weights = rng.normal(size=12)
    numeric = central_difference(lambda: float(np.sum(weights * clip(x))), x)
    assert relative_error(weights * clip.derivative(x), numeric) < 1e-6
    assert np.all(np.abs(clip(x)) < 3.0)


def test_smooth_clip_survives_the_state_round_trip(frame: pd.DataFrame) -> None:
    pre = Preprocessor(scale="robust_range", clip="smooth", log1p=True).fit(frame, FEATURES)
    meta, arrays = pre.to_state()
    assert meta["options"]["clip"] == "smooth"
    rebuilt = Preprocessor.from_state(*save_and_load(meta, arrays))
    np.testing.assert_array_equal(rebuilt.transform(frame), pre.transform(frame))


def test_no_clip_leaves_the_state_as_before(frame: pd.DataFrame) -> None:
    """Model files of existing options must not change by a byte: no 'clip' key unless set."""
    meta, _ = Preprocessor().fit(frame, FEATURES).to_state()
    assert "clip" not in meta["options"]
    assert all("clip" not in record for record in Preprocessor().fit(frame, FEATURES).describe())


def test_unknown_clip_lists_the_choices() -> None:
    with pytest.raises(UsageError, match="Unknown clipping 'hard'; choose one of: none, smooth"):
        Preprocessor(clip="hard")


@pytest.mark.parametrize("log1p", [False, True], ids=["raw", "log1p"])
def test_encoding_derivatives_include_the_smooth_clip(log1p: bool) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.gamma(2.0, 3.0, 50)})
    pre = Preprocessor(scale="robust_range", clip="smooth", log1p=log1p).fit(frame, ["a"])
    eps = 1e-6
    numeric = (pre.transform(frame + eps, np.float64) - pre.transform(frame - eps, np.float64)) / (
        2 * eps
    )
    np.testing.assert_allclose(pre.encoding_derivatives(frame), numeric, rtol=1e-6)
    # The reference row is the clipped encoding of the imputation value (the training median).
    u = (pre.impute_values_ - pre.centers_) / pre.scales_
    np.testing.assert_allclose(pre.reference_row(), u / np.sqrt(1 + (u / 3) ** 2))


def test_frequency_encoding_beyond_max_levels_round_trips() -> None:
    frame = pd.DataFrame({"site": ["a"] * 5 + ["b"] * 3 + ["c"] + [None], "x": np.arange(10.0)})
    pre = Preprocessor(max_levels=3, high_cardinality="frequency").fit(frame, ["site", "x"])
    assert pre.input_kinds() == {"site": "frequency", "x": "numeric"}
    assert pre.feature_names_out == ["site", "x"]
    new = pd.DataFrame({"site": ["b", "c", None, "never"], "x": [0.0, 1.0, 2.0, 3.0]})
    np.testing.assert_allclose(pre.transform(new, np.float64)[:, 0], [0.3, 0.1, 0.1, 0.0])
    meta, arrays = pre.to_state()
    assert meta["columns"][0]["counts"] == [5, 3, 1, 1]
    again = Preprocessor.from_state(meta, arrays)
    np.testing.assert_array_equal(again.transform(new), pre.transform(new))
    assert again.reference_row()[0] == pytest.approx(0.25 + 0.09 + 0.01 + 0.01)
    assert again.describe()[0]["encoding"] == "frequency"


def test_frequency_state_with_counts_that_do_not_match_is_refused() -> None:
    frame = pd.DataFrame({"site": list("aabbccdd"), "x": np.arange(8.0)})
    meta, arrays = (
        Preprocessor(max_levels=2, high_cardinality="frequency")
        .fit(frame, ["site", "x"])
        .to_state()
    )
    meta["columns"][0]["counts"] = [1, 2]
    with pytest.raises(ModelFileError, match="do not match its column list"):
        Preprocessor.from_state(meta, arrays)


def test_transform_into_a_used_array_equals_a_fresh_transform() -> None:
    frame = pd.DataFrame(
        {"x": [1.0, np.nan, 3.0, 4.0], "g": ["a", "b", None, "a"], "y": [0.5, 2.0, 2.0, 9.0]}
    )
    pre = Preprocessor(missing_indicators=True).fit(frame, ["x", "g", "y"], ["g"])
    fresh = pre.transform(frame)
    out = np.full_like(fresh, 7.0)  # what an earlier block left there
    assert pre.transform(frame, out=out) is out
    assert out.tobytes() == fresh.tobytes()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"impute": "mean", "missing_indicators": True},
        {"impute": "constant", "fill_value": -7.0, "scale": "robust", "clip": "smooth"},
        {"scale": "minmax"},
        {"log1p": True, "scale": "none"},  # column by column: log1p's loops may round otherwise
    ],
    ids=["default", "mean-indicators", "constant-robust-smooth", "minmax", "log1p"],
)
@pytest.mark.parametrize("block_rows", [65_536, 64], ids=["one-block", "blocks-of-64"])
def test_numeric_columns_at_once_give_the_bits_of_column_by_column(
    options: dict[str, Any], block_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preprocessing, "NUMERIC_BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(4)
    n = 500
    frame = pd.DataFrame(
        {
            "a": rng.standard_normal(n).astype(np.float32) * 1e3,
            "kind": rng.choice(["p", "q", "r"], n),
            "b": np.abs(rng.standard_normal(n)),
            "count": rng.integers(0, 40, n),
            "c": rng.lognormal(size=n).astype(np.float32),
        }
    )
    for name in ("a", "b", "c"):
        frame.loc[rng.random(n) < 0.1, name] = np.nan
    if options.get("log1p"):
        frame["a"] = frame["a"].abs()
    pre = Preprocessor(**options).fit(frame.iloc[:400], ["a", "kind", "b", "count", "c"], ["kind"])
    at_once = pre.transform(frame)
    monkeypatch.setattr(Preprocessor, "_transform_numeric_block", lambda *a: False)
    assert at_once.tobytes() == pre.transform(frame).tobytes()


@pytest.mark.parametrize("order", ["adjacent", "shuffled"])
@pytest.mark.parametrize("block_rows", [65_536, 64], ids=["one-block", "blocks-of-64"])
def test_rows_of_the_table_matrix_at_once_give_the_bits_of_each_column(
    order: str, block_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The readers' row-major float32 matrix, read as a frame or as the rows of a split
    (`prepare.RowsOf`), gives the bits of the column-by-column path."""
    from mlpcli.data.cache import frame_from_blocks
    from mlpcli.prepare import rows_of

    monkeypatch.setattr(preprocessing, "NUMERIC_BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(5)
    n, k = 700, 6
    matrix = (rng.standard_normal((n, k)) * 50).astype(np.float32)
    matrix[rng.random((n, k)) < 0.1] = np.nan
    names = [f"x{j}" for j in range(k)]
    ids = pd.array([f"s{i}" for i in range(n)], dtype="str")
    frame = frame_from_blocks(
        [(matrix.T, np.arange(1, k + 1)), (ids, np.asarray([0]))],
        pd.RangeIndex(n),
        pd.Index(["id", *names]),
    )
    features = names if order == "adjacent" else [names[j] for j in (4, 0, 5, 2, 1, 3)]
    rows = np.sort(rng.choice(n, 500, replace=False))
    pre = Preprocessor(missing_indicators=True).fit(frame.iloc[rows], features)
    whole = pre.transform(frame)
    picked = pre.transform(rows_of(frame, rows))
    monkeypatch.setattr(Preprocessor, "_transform_numeric_block", lambda *a: False)
    assert whole.tobytes() == pre.transform(frame).tobytes()
    assert picked.tobytes() == pre.transform(rows_of(frame, rows)).tobytes()
    assert picked.tobytes() == whole[rows].tobytes()


@pytest.mark.parametrize("block_rows", [65_536, 1], ids=["one-block", "a-later-block"])
def test_an_infinite_value_is_still_named_with_its_column(
    block_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preprocessing, "NUMERIC_BLOCK_ROWS", block_rows)
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 4.0]})
    pre = Preprocessor().fit(train, ["x", "y"])
    with pytest.raises(DataError, match="'y' holds an infinite value"):
        pre.transform(pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, np.inf]}))
