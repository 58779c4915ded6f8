"""scikit-learn's own estimator checks on MLPClassifier and MLPRegressor: about 100 checks,
20 s, and an import of scikit-learn's check module that `pytest -m "not slow"` skips."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "sklearn", reason='the sklearn extra is not installed (pip install ".[sklearn]")'
)

from sklearn.utils.estimator_checks import parametrize_with_checks

from mlpcli.sklearn import EXPECTED_FAILED_CHECKS, MLPClassifier, MLPRegressor

pytestmark = pytest.mark.slow


@parametrize_with_checks(
    [MLPClassifier(), MLPRegressor()], expected_failed_checks=lambda _: EXPECTED_FAILED_CHECKS
)
def test_scikit_learn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]
