"""`predict`'s chunks computed on several threads (`predicting.ordered_map`, one network copy
per thread) and the preprocessing's finite-block fast path: the same bytes as one thread and as
the full path."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli import config, predicting
from mlpcli.pipeline import train_frame, write_outputs
from mlpcli.predicting import PredictOptions
from mlpcli.preprocessing import Preprocessor

N_ROWS = 3000  # three 1,024-row chunks: two workers, then one


def _table(n: int = N_ROWS, seed: int = 3) -> pd.DataFrame:
    """Twelve numeric features (one with missing cells), a categorical, zero-padded text IDs
    and a 3-class label."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12)) * rng.choice([1e-6, 1.0, 1e4], size=12)
    frame = pd.DataFrame(X, columns=[f"x{j:02d}" for j in range(12)])
    frame.loc[rng.random(n) < 0.05, "x03"] = np.nan
    frame.insert(0, "sample", [f"{i:06d}" for i in range(n)])
    frame["g"] = rng.choice(["u", "v", "w"], size=n)
    frame["y"] = np.select([X[:, 0] > 0.5, X[:, 1] > 0], ["a", "b"], "c")
    return frame


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.csv, a plain model (plain.npz) and a 3-member ensemble of the recipe (ens.npz)."""
    folder = tmp_path_factory.mktemp("workers")
    frame = _table()
    frame.to_csv(folder / "data.csv", index=False)
    values: dict[str, object] = {"target": "y", "id": ["sample"], "seed": 1, "epochs": 2}
    for name, extra in (
        ("plain", {"hidden": "32,16"}),
        ("ens", {"preset": "realmlp_td", "hidden": "8,8", "batch_size": 64, "ensemble": 3}),
    ):
        outcome = train_frame(frame, config.resolve({**values, **extra}))
        write_outputs(outcome, str(folder / f"{name}.npz"))
    return folder


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("plain", PredictOptions(chunk_size=1024)),
        ("plain", PredictOptions(chunk_size=1, proba=False)),
        ("plain", PredictOptions(chunk_size=2048, ids=())),
        ("ens", PredictOptions(chunk_size=1024, spread=True)),
    ],
    ids=["plain", "one-block-chunks", "row-numbers", "ensemble-spread"],
)
def test_two_workers_write_the_bytes_of_one(
    model: str,
    options: PredictOptions,
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = []
    for workers in (1, 2):
        monkeypatch.setattr(predicting, "MAX_PREDICT_WORKERS", workers)
        out = tmp_path / f"pred{workers}.csv"
        summary = predicting.predict_file(
            folder / f"{model}.npz", str(folder / "data.csv"), str(out), options
        )
        assert summary.n_rows == N_ROWS
        texts.append(out.read_bytes())
    assert texts[0] == texts[1]
    assert texts[0].count(b"\n") == N_ROWS + 1


def test_ordered_map_keeps_the_order_and_bounds_what_it_takes_ahead() -> None:
    taken: list[int] = []
    done: list[int] = []
    lock = threading.Lock()

    def items() -> object:
        for i in range(20):
            with lock:
                taken.append(i)
                # At most workers = 2 taken beyond what the caller has received.
                assert len(taken) - len(done) <= 2
            yield i

    def slow_square(i: int) -> int:
        time.sleep(0.002 * (i % 3))  # later items often finish first
        return i * i

    for result in predicting.ordered_map(slow_square, items(), workers=2):  # type: ignore[arg-type]
        with lock:
            done.append(result)
    assert done == [i * i for i in range(20)]


def test_ordered_map_raises_a_worker_error_at_its_item() -> None:
    def fail_on_three(i: int) -> int:
        if i == 3:
            raise ValueError("bad chunk 3")
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="bad chunk 3"):
        for result in predicting.ordered_map(fail_on_three, range(10), workers=2):
            got.append(result)
    assert got == [0, 1, 2]


# --------------------------------------------------------------------------- transform
def _awkward(n: int, dtype: type, seed: int) -> pd.DataFrame:
    """Negative, huge, tiny, zero and ordinary values in 30 columns."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-30, 30, size=(n, 30))
    X = (rng.normal(size=(n, 30)) * scale).astype(dtype)
    X[rng.random((n, 30)) < 0.01] = 0.0
    return pd.DataFrame(X, columns=[f"c{j}" for j in range(30)])


def _fitted(frame: pd.DataFrame, **options: object) -> Preprocessor:
    fit = frame.astype(np.float64).clip(-1e6, 1e6)  # finite statistics
    return Preprocessor(**options).fit(fit, list(frame.columns))  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("clip", ["none", "smooth"])
def test_finite_blocks_give_the_bits_of_the_full_path(
    dtype: type, clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _awkward(5000, dtype, seed=4)
    pre = _fitted(frame, clip=clip, scale="robust")
    taken: list[bool] = []
    finite_block = Preprocessor._transform_finite_block

    def counted(*args: object) -> bool:
        taken.append(finite_block(*args))  # type: ignore[arg-type]
        return taken[-1]

    monkeypatch.setattr(Preprocessor, "_transform_finite_block", counted)
    fast = pre.transform(frame)
    assert taken == [True, True, True]  # 5,000 rows: three blocks of NUMERIC_BLOCK_ROWS
    monkeypatch.setattr(Preprocessor, "_transform_finite_block", lambda *args: False)
    full = pre.transform(frame)
    assert fast.dtype == full.dtype == np.float32
    assert fast.tobytes() == full.tobytes()


@pytest.mark.parametrize("bad", [np.nan, 3e38], ids=["nan", "huge-sum"])
def test_a_block_the_fast_path_cannot_take_goes_the_full_way(
    bad: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _awkward(5000, np.float32, seed=5)
    frame.iloc[4500, 2] = bad  # in a later block of NUMERIC_BLOCK_ROWS
    frame.iloc[4501, 2] = bad
    pre = _fitted(frame.fillna(0.0))
    with np.errstate(over="ignore", invalid="ignore"):
        fast = pre.transform(frame)
        monkeypatch.setattr(Preprocessor, "_transform_finite_block", lambda *args: False)
        full = pre.transform(frame)
    assert fast.tobytes() == full.tobytes()
