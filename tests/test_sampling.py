"""Block-shuffled mini-batches from rows on disk, and the row-hash validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli.sampling import BlockBatches, RowFile, RowFileWriter, row_hash_valid
from mlpcli.training import FitOptions, Trainer


def row_file(tmp_path: Path, n: int) -> tuple[RowFile, np.ndarray, np.ndarray]:
    """X = [row number, 2 x row number] on disk; Y = row number + 0.5 and w = row % 3 + 1."""
    writer = RowFileWriter(tmp_path / "rows.f32", 2)
    for start in range(0, n, 1000):
        i = np.arange(start, min(start + 1000, n), dtype=np.float32)
        writer.append(np.column_stack([i, 2 * i]))
    i = np.arange(n, dtype=np.float32)
    return writer.finish(), (i + 0.5)[:, None], i % 3 + 1


@pytest.mark.parametrize(
    ("n", "batch", "block", "window"),
    [(1000, 32, 50, 4), (1001, 32, 50, 4), (997, 64, 7, 3), (10, 32, 4, 2), (500, 7, 500, 1)],
)
def test_every_row_is_seen_exactly_once_per_epoch(
    tmp_path: Path, n: int, batch: int, block: int, window: int
) -> None:
    rows, Y, _ = row_file(tmp_path, n)
    batches = BlockBatches(rows, Y, None, batch, block_rows=block, window_blocks=window)
    rng = np.random.default_rng(0)
    orders = []
    for _ in range(3):
        seen, sizes = [], []
        for Xb, Yb, wb in batches.epoch(rng):
            assert wb is None
            np.testing.assert_array_equal(Xb[:, 1], 2 * Xb[:, 0])  # X and Y stay row-aligned
            np.testing.assert_array_equal(Yb[:, 0], Xb[:, 0] + 0.5)
            seen.append(Xb[:, 0].astype(int))
            sizes.append(len(Xb))
        order = np.concatenate(seen)
        np.testing.assert_array_equal(np.sort(order), np.arange(n))
        assert len(sizes) == batches.n_batches
        assert all(s == min(batch, n) for s in sizes[:-1]) and 0 < sizes[-1] <= batch
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])  # a new shuffle every epoch
    again = [np.concatenate([X[:, 0] for X, _, _ in batches.epoch(np.random.default_rng(0))])]
    np.testing.assert_array_equal(again[0], orders[0])  # and the same one for the same seed


def test_a_batch_draws_from_one_window_of_blocks(tmp_path: Path) -> None:
    """What makes the page cache work: a batch's rows lie in at most 2 windows' blocks."""
    rows, Y, _ = row_file(tmp_path, 4000)
    batches = BlockBatches(rows, Y, None, 50, block_rows=100, window_blocks=4)
    for Xb, _, _ in batches.epoch(np.random.default_rng(1)):
        assert len(np.unique(Xb[:, 0].astype(int) // 100)) <= 8


def test_a_lone_last_row_is_dropped_for_batch_normalisation(tmp_path: Path) -> None:
    rows, Y, _ = row_file(tmp_path, 65)
    batches = BlockBatches(rows, Y, None, 32, block_rows=10, window_blocks=2, drop_single=True)
    sizes = [len(X) for X, _, _ in batches.epoch(np.random.default_rng(0))]
    assert sizes == [32, 32] and batches.n_batches == 2


def test_targets_and_weights_follow_their_rows(tmp_path: Path) -> None:
    rows, Y, w = row_file(tmp_path, 300)
    batches = BlockBatches(rows, Y, w, 64, block_rows=30, window_blocks=3)
    for Xb, _, wb in batches.epoch(np.random.default_rng(0)):
        assert wb is not None
        np.testing.assert_array_equal(wb, Xb[:, 0] % 3 + 1)


def test_row_files_read_what_was_written_and_wrap_memory_maps(tmp_path: Path) -> None:
    data = np.random.default_rng(2).normal(size=(123, 5)).astype(np.float32)
    path = tmp_path / "m.npy"
    np.save(path, data)
    mapped = np.load(path, mmap_mode="r")
    rows = RowFile.of_memmap(mapped)
    np.testing.assert_array_equal(rows[10:20], data[10:20])
    np.testing.assert_array_equal(rows.read(120, 500), data[120:])
    assert rows.shape == (123, 5) and len(rows) == 123
    with pytest.raises(IndexError):
        rows[::2]


def test_the_trainer_learns_from_block_batches_and_reads_validation_from_disk(
    tmp_path: Path,
) -> None:
    from mlpcli import optimizers
    from mlpcli.nn.network import MLP

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 4)).astype(np.float32)
    Y = (X @ np.array([1.0, -2.0, 0.5, 0.0], np.float32))[:, None]
    writer = RowFileWriter(tmp_path / "train.f32", 4)
    writer.append(X[:2500])
    train = writer.finish()
    valid = RowFileWriter(tmp_path / "valid.f32", 4)
    valid.append(X[2500:])
    X_val = valid.finish()
    net = MLP(4, (8,), 1, activation="relu", loss="mse", seed=0)
    options = FitOptions(epochs=15, batch_size=32, patience=None)
    trainer = Trainer(net, optimizers.get("adam", lr=0.01), options, np.random.default_rng(0))
    batches = BlockBatches(train, Y[:2500], None, 32, block_rows=100, window_blocks=4)
    result = trainer.fit(None, None, X_val, Y[2500:], batches=batches)  # type: ignore[arg-type]
    losses = [r.val_loss for r in result.history]
    assert losses[-1] is not None and losses[0] is not None
    assert losses[-1] < 0.1 * losses[0]


def test_the_row_hash_split_is_stable_and_needs_no_table() -> None:
    ids = pd.Series([f"S{i:06d}" for i in range(100_000)])
    whole = row_hash_valid(ids, 0.2, seed=7)
    parts = np.concatenate(
        [row_hash_valid(ids[i : i + 999], 0.2, seed=7) for i in range(0, len(ids), 999)]
    )
    np.testing.assert_array_equal(whole, parts)  # any chunking, the same rows
    assert whole.mean() == pytest.approx(0.2, abs=0.005)
    other = row_hash_valid(ids, 0.2, seed=8)
    assert 0.25 < (whole != other).mean() < 0.4  # another seed, another split
    numbers = row_hash_valid(np.arange(100_000), 0.1, seed=0)
    assert numbers.mean() == pytest.approx(0.1, abs=0.005)
    groups = pd.Series(np.repeat([f"patient{i}" for i in range(500)], 4))
    per_group = row_hash_valid(groups, 0.3, seed=1).reshape(500, 4)
    assert (per_group.all(axis=1) | ~per_group.any(axis=1)).all()  # a group stays together
