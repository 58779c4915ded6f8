"""Permutation importance of a table larger than memory (`explain --out-of-core`).

The rows with every target are read block by block from the table cache (`outofcore`), encoded
with the model's preprocessing into a float32 row file beside the cache (removed afterwards);
their true targets stay in memory (one value a row). Scores come from the network's outputs on
every row, kept (rows x outputs, never the features) and scored by the in-memory metric.

Shuffling: a seeded *global* permutation of all rows, the one in-memory explain draws (feature
j's stream, one `permutation(n)` per repeat, in order), not a shuffle within each block. So the
importances are those of in-memory explain for the same `--seed`, up to the float32 rounding of
forward passes over other block sizes, and a column is shuffled across the whole table however
it is sorted (a shuffle within blocks would keep a sorted table's column almost in place).
Its cost: per group of features whose encoded columns fit in `GATHER_BYTES`, one pass gathers
those columns; then one pass over the rows per feature and repeat (features x repeats passes in
all), each holding one permutation (8 bytes a row), the true targets, the outputs, the metric's
copy of them and the feature's columns. So these of every row must fit in memory together: a
feature for which they would not (a `--group-features` group of a long table; 5 of 50 columns
of 11M rows were killed at 512 MiB) is refused before any pass (`_check_widths`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlpcli import outofcore, parallel, predicting
from mlpcli.errors import DataError, UsageError
from mlpcli.explain.common import ExplainOptions, Explanation, Floats, Indices, feature_units
from mlpcli.explain.permutation import _metric, _Scorer, check_targets, explanation
from mlpcli.limits import format_bytes
from mlpcli.sampling import RowFile, RowFileWriter
from mlpcli.trained import TrainedModel

#: Bytes of encoded feature columns gathered in one pass over the rows.
GATHER_BYTES = 64 << 20


def permutation_on_disk(
    model: TrainedModel, path: str, settings: Any, options: ExplainOptions
) -> tuple[Explanation, str]:
    """`permutation_importance` of the table at `path` (read with the model's `settings`)
    without holding it: the explanation and the table's SHA-256."""
    entry = outofcore.cached_table(path, settings)
    check_targets(model, entry.columns)
    predicting.check_columns(model, entry.columns, path)
    feats = feature_units(model, options.groups)
    _check_widths(feats, entry.n_rows, model.net.dtype.itemsize, model.net.architecture.n_outputs)
    X, y_true, n_dropped = _encode(model, outofcore.Rows(entry))
    scorer = _Scorer(_metric(model, options.metric), model.encoder, y_true, model.threshold)
    repeats = 10 if options.repeats is None else options.repeats
    baseline = scorer(outofcore.forward(model.net, X))
    seeds = parallel.seed_streams(options.seed, len(feats.names))
    scores: list[Floats] = []
    for group in _gather_groups(feats.indices, len(X)):
        columns = _gather(X, [feats.indices[j] for j in group])
        for j, cols in zip(group, columns, strict=True):
            scores.append(_repeat_scores(model.net, X, feats.indices[j], cols, scorer, repeats,
                                         seeds[j]))  # fmt: skip
    outofcore.return_free_heap()
    result = explanation(model, feats, scorer, baseline, scores, repeats, options, len(X),
                         n_dropped)  # fmt: skip
    return result, entry.sha256


def _encode(model: TrainedModel, rows: outofcore.Rows) -> tuple[RowFile, NDArray[Any], int]:
    """The labelled rows encoded into a row file, their true values, the rows dropped."""
    from mlpcli import data

    targets = list(model.encoder.targets)
    columns = list(dict.fromkeys([*model.preprocessor.input_columns, *targets]))
    work = rows.entry.folder.parent.parent / "training"
    work.mkdir(parents=True, exist_ok=True)
    folder = tempfile.TemporaryDirectory(prefix="explain-", dir=work)
    writer: RowFileWriter | None = None
    truths = outofcore.Filled(rows.n_rows)  # one array, no list of blocks joined at the end
    n_dropped = 0
    with predicting._unseen_level_summary():
        for frame in rows.blocks(columns):
            present = frame[targets].notna().all(axis=1).to_numpy()
            n_dropped += int((~present).sum())
            if not present.any():
                continue
            part = frame[present]
            X = model.transform(part)
            if writer is None:
                writer = RowFileWriter(Path(folder.name) / "explain.X", X.shape[1], X.dtype)
            writer.append(X)
            encoded = model.encoder.encode(part, np.float64)
            truth = encoded[0] if model.encoder.classification else model.encoder.decode(encoded)
            truths.add(np.asarray(truth))
    if writer is None:
        data.drop_missing_targets(rows.frame(0, 1, targets), targets)  # says which is empty
        raise DataError("The data has no rows to explain.")
    X_file = writer.finish()
    X_file.owner = folder
    y_true = truths.array()
    if y_true is None:
        raise DataError("The data has no rows to explain.")
    return X_file, y_true, n_dropped


#: Bytes a row that a pass holds whatever the feature: the permutation (int64), the true
#: targets and the metric's decisions (8 bytes each), and per output the network's value plus
#: the metric's float64 copy (`OUTPUT_BYTES_PER_ROW` + the network's itemsize). A binary model
#: of 50 features on 11M rows under a 512 MiB limit (bench/outofcore.py): a one-column feature
#: peaked at 391 MiB anonymous (this estimate: 420 MiB); groups of 5 columns were killed
#: (estimate: 587 MiB, refused now).
PASS_BYTES_PER_ROW = 8 + 8 + 8
OUTPUT_BYTES_PER_ROW = 8


def _check_widths(feats: Any, n_rows: int, itemsize: int, n_outputs: int) -> None:
    """Refuse, before any pass, a feature for which a pass would not fit in the memory
    available: the permutation, targets and outputs of every row (`PASS_BYTES_PER_ROW`) and
    the feature's encoded columns (a wide --group-features group of a long table)."""
    available = outofcore.available_memory()
    fixed = n_rows * (PASS_BYTES_PER_ROW + n_outputs * (itemsize + OUTPUT_BYTES_PER_ROW))
    for name, cols in zip(feats.names, feats.indices, strict=True):
        size = n_rows * len(cols) * itemsize
        if fixed + size > available:
            raise UsageError(
                f"Out of core, explain holds each feature's encoded columns of every row "
                f"beside the rows' permutation, targets and outputs: '{name}' has {len(cols)} "
                f"({format_bytes(size)} for {n_rows:,} rows; {format_bytes(fixed + size)} in "
                f"all), more than the {format_bytes(available)} available; split "
                "--group-features into smaller groups, or pass --out-of-core off."
            )


def _gather_groups(indices: list[Indices], n_rows: int) -> list[list[int]]:
    """Consecutive features whose encoded columns together take at most GATHER_BYTES (at
    least one feature per group)."""
    groups: list[list[int]] = [[]]
    taken = 0
    for j, cols in enumerate(indices):
        size = 4 * n_rows * len(cols)
        if groups[-1] and taken + size > GATHER_BYTES:
            groups.append([])
            taken = 0
        groups[-1].append(j)
        taken += size
    return [g for g in groups if g]


def _gather(X: RowFile, indices: list[Indices]) -> list[NDArray[Any]]:
    """Some features' encoded columns of every row, in one pass over the file."""
    out = [np.empty((len(X), len(cols)), X.dtype) for cols in indices]
    for start in range(0, len(X), outofcore.CHUNK_ROWS):
        block = X.read(start, start + outofcore.CHUNK_ROWS)
        for values, cols in zip(out, indices, strict=True):
            values[start : start + len(block)] = block[:, cols]
    return out


def _repeat_scores(
    net: Any,
    X: RowFile,
    cols: Indices,
    values: NDArray[Any],
    scorer: _Scorer,
    repeats: int,
    seed: np.random.SeedSequence,
) -> Floats:
    """Scores with `cols` (whose values are `values`) shuffled together by one permutation of
    all rows per repeat, drawn as in memory; one pass over the rows per repeat."""
    rng = np.random.default_rng(seed)
    n = len(X)
    scores = np.empty(repeats)
    P = np.empty((n, net.architecture.n_outputs), net.dtype)
    for r in range(repeats):
        perm = rng.permutation(n)
        for start in range(0, n, outofcore.CHUNK_ROWS):
            block = X.read(start, start + outofcore.CHUNK_ROWS)
            stop = start + len(block)
            block[:, cols] = values[perm[start:stop]]
            P[start:stop] = net.forward(block)
        del perm
        scores[r] = scorer(P)
    return scores
