"""Which input columns drive a trained model, reported per column of the raw table.

A numeric column's missing indicator and a categorical column's one-hot block belong to their
column, so every method answers per input column (or per named group of columns):

- permutation:  importance_j = s (score(X) - score(X, column j's rows shuffled)), mean and sd
  over repeats; s = +1 when the metric's greater is better, -1 otherwise, so positive = used.
- gradient:     importance_j = mean_i |d f(x_i) / d raw_ij|, the chain rule running through the
  stored scaling and log1p, so it is per unit of the original feature; a categorical column
  reports mean over its levels of |d f / d level - the block's mean|: switching levels is the
  only move a sample can make, so the gradient shared by all levels is removed.
- integrated-gradients: a_ij = (x_ij - x'_j) int_0^1 d f(x' + t (x_i - x')) / d x_j dt, whose
  sum over j is f(x_i) - f(x') (completeness); importance_j = mean_i |a_ij|.

f is the network output: class probabilities (binary: of the positive class), or regression
targets in their original units. Nothing here prints; warnings and the completeness check go to
the `mlpcli` logger.

The package: `common` (options, result, features and groups), one module per method family
(`permutation`, `gradients`) and `run` (the method registry, entry points and output files).
"""

from __future__ import annotations

from mlpcli.explain.common import (
    BATCH_ROWS,
    COMPLETENESS_WARNING,
    ExplainOptions,
    Explanation,
    read_data,
    read_groups,
)
from mlpcli.explain.gradients import RULES, baseline_row, gradient_saliency, integrated_gradients
from mlpcli.explain.permutation import permutation_importance
from mlpcli.explain.run import (
    METHODS,
    check_options,
    check_outputs,
    check_plot,
    explain,
    explain_files,
    plot,
    warn_if_training_data,
    write_table,
)

__all__ = [
    "BATCH_ROWS",
    "COMPLETENESS_WARNING",
    "METHODS",
    "RULES",
    "ExplainOptions",
    "Explanation",
    "baseline_row",
    "check_options",
    "check_outputs",
    "check_plot",
    "explain",
    "explain_files",
    "gradient_saliency",
    "integrated_gradients",
    "permutation_importance",
    "plot",
    "read_data",
    "read_groups",
    "warn_if_training_data",
    "write_table",
]
