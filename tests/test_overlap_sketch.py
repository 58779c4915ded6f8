"""overlap's ID sketch: the partitioned bottom-k against the sort of every hash."""

from __future__ import annotations

import numpy as np
import pytest

from mlpcli import overlap


@pytest.mark.parametrize(
    "n_distinct", [10, overlap.SKETCH_SIZE - 1, overlap.SKETCH_SIZE, 3 * overlap.SKETCH_SIZE]
)
@pytest.mark.parametrize("repeats", [1, 3], ids=["distinct", "repeated"])
def test_smallest_distinct_is_the_start_of_the_sorted_unique_hashes(
    n_distinct: int, repeats: int
) -> None:
    rng = np.random.default_rng(n_distinct + repeats)
    distinct = rng.integers(0, 2**64 - 1, n_distinct, dtype=np.uint64, endpoint=True)
    hashes = rng.permutation(np.repeat(distinct, repeats))
    expected = np.unique(hashes)[: overlap.SKETCH_SIZE]
    assert np.array_equal(overlap._smallest_distinct(hashes), expected)


def test_smallest_distinct_with_repeats_below_the_cut_sorts_everything() -> None:
    """The smallest hash repeated SKETCH_SIZE times: the cut holds one distinct value only."""
    small = np.zeros(overlap.SKETCH_SIZE, dtype=np.uint64)
    others = np.arange(1, overlap.SKETCH_SIZE + 5, dtype=np.uint64)
    hashes = np.concatenate([small, others])
    assert np.array_equal(overlap._smallest_distinct(hashes), np.arange(overlap.SKETCH_SIZE))


def test_row_ids_of_blocks_are_every_id_in_order() -> None:
    import pandas as pd

    from mlpcli import pipeline

    split = pd.DataFrame({"a": [f"s{i}" for i in range(10)], "b": list(range(10))})
    rows = np.array([0, 3, 4, 9])
    pipeline_ids = list(pipeline._row_ids(split, ["a", "b"], rows))
    assert pipeline_ids == [f"s{i}\x1f{i}" for i in rows]
