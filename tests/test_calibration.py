"""Temperature scaling, log loss and expected calibration error, against values worked out by
hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlpcli import calibration


def _two_class(a: float, n_right: int, n_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits (a, -a) on every row; class 0 is right on n_right rows, wrong on n_wrong."""
    Z = np.tile([a, -a], (n_right + n_wrong, 1))
    y = np.array([0] * n_right + [1] * n_wrong)
    return Z, y


def test_temperature_by_hand() -> None:
    """Every row has p(class 0) = sigmoid(2a / T), right on a fraction q of the rows; the log
    loss -[q log s + (1 - q) log(1 - s)] is least at s = q, so T = 2a / logit(q).
    a = 3, q = 3/4: T = 6 / ln 3 = 5.4614..."""
    Z, y = _two_class(3.0, 3, 1)
    assert calibration.fit_temperature(Z, y) == pytest.approx(6.0 / math.log(3.0), rel=1e-5)


def test_sigmoid_logit_column_scales_the_same_way() -> None:
    """A one-column logit z is the pair (0, z): logit z = 6 right on 3 of 4 rows -> T = 6 / ln 3."""
    Z = np.full((4, 1), 6.0)
    y = np.array([1, 1, 1, 0])
    assert calibration.fit_temperature(Z, y) == pytest.approx(6.0 / math.log(3.0), rel=1e-5)
    P = calibration.probabilities(Z, 6.0 / math.log(3.0))
    np.testing.assert_allclose(P, np.tile([0.25, 0.75], (4, 1)), rtol=1e-12)


def test_under_confident_logits_get_a_temperature_below_one() -> None:
    Z, y = _two_class(0.1, 9, 1)  # p = sigmoid(0.2) = 0.55 but right 90% of the time
    temperature = calibration.fit_temperature(Z, y)
    assert temperature < 1
    assert temperature == pytest.approx(0.2 / math.log(9.0), rel=1e-5)


def test_temperature_never_changes_the_predicted_class(rng: np.random.Generator) -> None:
    Z = rng.normal(size=(50, 4)) * 5
    y = rng.integers(0, 4, 50)
    T = calibration.fit_temperature(Z, y)
    P0, PT = calibration.probabilities(Z), calibration.probabilities(Z, T)
    np.testing.assert_array_equal(P0.argmax(axis=1), PT.argmax(axis=1))
    assert calibration.log_loss(PT, y) <= calibration.log_loss(P0, y)


def test_log_loss_by_hand() -> None:
    P = np.array([[0.25, 0.75], [0.5, 0.5]])
    assert calibration.log_loss(P, [1, 0]) == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)


def test_ece_by_hand() -> None:
    """Bin (13/15, 14/15]: confidences 0.9, 0.9, one right -> |0.5 - 0.9| = 0.4 per row.
    Bin (8/15, 9/15]: 0.6 (right) and 0.55 (wrong) -> accuracy 1/2, confidence 0.575, 0.075.
    ECE = (2 * 0.4 + 2 * 0.075) / 4."""
    P = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.55, 0.45]])
    y = np.array([0, 1, 1, 1])
    expected = (2 * 0.4 + 2 * 0.075) / 4
    assert calibration.expected_calibration_error(P, y) == pytest.approx(expected, rel=1e-12)
    assert calibration.expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0


def test_bad_logits_are_refused() -> None:
    with pytest.raises(ValueError, match="expected logits of shape"):
        calibration.fit_temperature(np.zeros(3), [0, 1, 0])


# ------------------------------------------------------------------ thresholds (by hand)
#: Scores and truth worked by hand: at each distinct score s (positive when p >= s)
#:   s    0.9  0.8  0.7  0.6  0.4  0.3  0.2  0.1
#:   TP    1    2    2    3    3    4    4    4      (4 positives, 4 negatives)
#:   FP    0    0    1    1    2    2    3    4
#:   J   .25   .5  .25   .5  .25   .5  .25   0      TPR - FPR
#:   F1   .4  .667 .571  .75 .667   .8 .727 .667    2 TP / (2 TP + FP + FN)
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
TRUTH = np.array([1, 1, 0, 1, 0, 1, 0, 0])


def test_youden_threshold_by_hand() -> None:
    """J = 0.5 at 0.8, 0.6 and 0.3: the highest wins; the cut is the midpoint (0.8 + 0.7) / 2."""
    chosen = calibration.choose_threshold(TRUTH, SCORES, "youden")
    assert chosen.threshold == pytest.approx(0.75)
    assert chosen.value == pytest.approx(0.5)


def test_f1_threshold_by_hand() -> None:
    """F1 = 0.8 at 0.3 only: the cut is (0.3 + 0.2) / 2."""
    chosen = calibration.choose_threshold(TRUTH, SCORES, "f1")
    assert chosen.threshold == pytest.approx(0.25)
    assert chosen.value == pytest.approx(0.8)


def test_threshold_ignores_row_order_and_handles_tied_scores() -> None:
    """Tied scores are one candidate: (0.5, 0.5, 0.2) with truth (1, 0, 0) gives J = 1 - 1/2 at
    0.5 and 0 at 0.2, so the cut is 0.35; shuffling the rows changes nothing."""
    p, y = np.array([0.2, 0.5, 0.5]), np.array([0, 0, 1])
    assert calibration.choose_threshold(y, p).threshold == pytest.approx(0.35)
    assert calibration.choose_threshold(y[::-1], p[::-1]).threshold == pytest.approx(0.35)


def test_the_lowest_score_is_the_cut_when_everything_must_be_positive() -> None:
    chosen = calibration.choose_threshold(np.array([0, 1]), np.array([0.9, 0.1]), "f1")
    assert chosen.threshold == pytest.approx(0.1)  # F1: 0 at 0.9, 2/3 at 0.1


def test_one_class_has_no_threshold() -> None:
    with pytest.raises(ValueError, match="both classes"):
        calibration.choose_threshold(np.ones(3), np.array([0.1, 0.2, 0.3]))


def test_config_lists_the_threshold_metrics() -> None:
    from mlpcli import config

    assert set(config.THRESHOLD_METRICS) == set(calibration.THRESHOLD_METRICS)


def test_folding_t_into_the_output_layer_divides_the_logits(rng: np.random.Generator) -> None:
    """softmax(X (W / T) + b / T) = softmax(z / T): the folded network outputs what
    `probabilities(z, T)` gives for its own logits."""
    from mlpcli.nn.network import MLP

    net = MLP(4, (5,), 3, loss="ce", dtype="float64", seed=1)
    X = rng.normal(size=(20, 4))
    Z = calibration.logits(net, X)
    folded = calibration.calibrated_copy(net, 2.5)
    np.testing.assert_allclose(folded.forward(X), calibration.probabilities(Z, 2.5), rtol=1e-12)
    np.testing.assert_array_equal(calibration.logits(net, X), Z)  # the original is untouched
