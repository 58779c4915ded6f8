"""Everything before training: read a table, choose its columns, decide the task, split the
rows and fit preprocessing and target encoding on the training side (`PreparedData`).

Below `pipeline`, `fitting`, `outofcore`, `baselines` and `crossval`, which all start from what
this returns; nothing here builds or trains a network.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from mlpcli import data, splitting
from mlpcli import task as tasks
from mlpcli.config import Settings
from mlpcli.errors import DataError, UsageError, warn_or_fail
from mlpcli.limits import check_memory, return_freed_memory
from mlpcli.preprocessing import Preprocessor
from mlpcli.target_encoding import TargetEncoder

LOG = logging.getLogger("mlpcli")


#: Neighbouring columns of the table's row-major matrix that `RowsOf` gathers together: a row's
#: 8 float32 share a cache line, so fitting reads the matrix 100 / 8 times, not 100 (100,000 x
#: 100: 0.24 against 0.49 ms a column, idle) ...
GATHER_COLUMNS = 8
#: ... as long as the group stays within this many bytes (900,000 rows: 4 columns, 14 MB, as
#: much as the float64 copies fitting makes of one column): `train`'s peak is held to 2x X.
GATHER_BYTES = 16 * 2**20


class RowsOf:
    """The rows `rows` of `frame`, read a column at a time: what preprocessing and target
    encoding need of the training (or validation) rows, without `frame.iloc[rows]` copying
    the whole table first (on 1M x 100 that copy, held while X is written, was 0.37 GB).
    `view[name]` and `view[names]` equal `frame.iloc[rows][...]`; any other attribute comes
    from that copy, made once, so a reader this does not foresee stays correct. A column of
    the table's row-major matrix comes with up to `GATHER_COLUMNS` - 1 right-hand neighbours,
    each kept until it is asked for once or the next group is gathered: read column after
    column, the rows are read once a group instead of once a column."""

    def __init__(self, frame: pd.DataFrame, rows: np.ndarray) -> None:
        self._frame, self._rows = frame, rows
        self.columns = frame.columns
        self._index = frame.index[rows]
        self._whole: pd.DataFrame | None = None
        self._group: dict[str, np.ndarray] = {}  # the last gathered group, by column name
        self._matrix_names: dict[int, str] | None = None  # matrix column -> frame column

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def dtypes(self) -> pd.Series:
        """The frame's: its rows' columns have the same dtypes (and no copy is made to ask)."""
        return self._frame.dtypes

    def __getitem__(self, key: Any) -> Any:
        column = self._frame[key]
        if isinstance(column, pd.Series) and isinstance(column.dtype, np.dtype):
            values = self._group.pop(key, None)  # served once: each caller owns its array
            if values is None:
                values = self._gather(key, column.to_numpy())
            return pd.Series(values, index=self._index, name=column.name, copy=False)
        return column.iloc[self._rows]

    def _gather(self, key: str, view: np.ndarray) -> np.ndarray:
        """The rows of column `key` (whose values are `view`): with its neighbours when it is a
        column of the table's row-major matrix, else alone (NumPy's gather: 3x faster than
        Series.iloc on a column of a row-major block)."""
        matrix = _row_major_root(view, len(self._frame))
        if matrix is None:
            return self._gather_alone(view)
        names = self._names_in(matrix)
        first = _column_of(view, matrix)
        if names.get(first) != key:  # never expected: a view this does not understand
            return self._gather_alone(view)
        row_bytes = max(len(self._rows), 1) * matrix.itemsize
        width = max(1, min(GATHER_COLUMNS, GATHER_BYTES // row_bytes))
        block = matrix[self._rows, first : first + width]
        self._group = {
            names[first + j]: block[:, j] for j in range(block.shape[1]) if first + j in names
        }
        return self._group.pop(key)

    def _gather_alone(self, view: np.ndarray) -> np.ndarray:
        gathered: np.ndarray = view[self._rows]
        return gathered

    def _names_in(self, matrix: np.ndarray) -> dict[int, str]:
        """Which frame column each column of `matrix` is (those that view it)."""
        if self._matrix_names is None:
            found: dict[int, str] = {}
            unique = self._frame.columns.is_unique
            for name, kind in self._frame.dtypes.items():
                if kind != matrix.dtype or not unique:
                    continue
                view = self._frame[name].to_numpy()
                if _root(view) is matrix and view.strides == matrix.strides[:1]:
                    found[_column_of(view, matrix)] = str(name)
            self._matrix_names = found
        return self._matrix_names

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._whole is None:
            self._whole = self._frame.iloc[self._rows]
        return getattr(self._whole, name)


def _column_of(view: np.ndarray, matrix: np.ndarray) -> int:
    """The index of the column of the C-ordered `matrix` that `view` starts at."""
    offset = view.__array_interface__["data"][0] - matrix.__array_interface__["data"][0]
    return int(offset // matrix.strides[1])


def _root(array: np.ndarray) -> np.ndarray:
    """The array that owns `array`'s memory (the table's matrix for one of its columns)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _row_major_root(view: np.ndarray, n_rows: int) -> np.ndarray | None:
    """The C-ordered (n_rows, k) array that `view` is one column of (a table's float block),
    or None when it is not such a column."""
    matrix = _root(view)
    if (
        matrix.ndim == 2
        and matrix.shape[0] == n_rows
        and matrix.flags.c_contiguous
        and view.strides == matrix.strides[:1]
    ):
        return matrix
    return None


def rows_of(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """`RowsOf` typed as the frame it stands for (it answers what the encoders ask of one)."""
    return cast(pd.DataFrame, RowsOf(frame, rows))


@dataclass
class PreparedData:
    """Encoded training (and validation) arrays plus what produced them."""

    X: np.ndarray
    Y: np.ndarray
    y_index: np.ndarray | None
    X_val: np.ndarray | None
    Y_val: np.ndarray | None
    y_index_val: np.ndarray | None
    sample_weight: np.ndarray | None
    preprocessor: Preprocessor
    target_encoder: TargetEncoder
    task: data.TaskInfo
    selection: data.ColumnSelection
    inputs: dict[str, str]  # source -> sha256
    n_rows: int
    n_dropped_targets: int
    split: pd.DataFrame = field(repr=False)  # id/row, set: train|valid


def read(path: str, settings: Settings) -> data.Table:
    d = settings.data
    return data.read_table(
        path,
        sep=d.sep,
        decimal=d.decimal,
        na_values=d.na_values,
        transpose=d.transpose,
        encoding=d.encoding,
        text_columns=d.id,
        thousands=d.thousands,
        numeric=d.numeric,
        sheet=d.sheet,
        layer=d.layer,
    )


@dataclass
class LoadedTable:
    """A table read with its columns chosen, rows without a target dropped, the task decided."""

    table: data.Table
    selection: data.ColumnSelection
    task: data.TaskInfo
    n_dropped: int
    extra_inputs: dict[str, str] = field(default_factory=dict)  # --labels: source -> sha256

    @property
    def frame(self) -> pd.DataFrame:
        return self.table.frame

    def class_codes(self) -> np.ndarray | None:
        """Class indices to stratify on (binary and multiclass), else None."""
        if not tasks.get(self.task.task).stratified:
            return None
        encoder = TargetEncoder().fit(
            self.frame, self.selection.targets, self.task.task, self.task.labels
        )
        strata: np.ndarray = encoder.encode(self.frame)[0]
        return strata

    def group_codes(self, column: str | None, pattern: str | None = None) -> np.ndarray | None:
        """Integer codes of the `--group` column (through `--group-pattern`), or None."""
        if column is None:
            if pattern is not None:
                raise UsageError("--group-pattern needs --group COL to apply to.")
            return None
        values = self.frame[column]
        if values.isna().any():
            raise DataError(
                f"{self.table.source}: --group column '{column}' has "
                f"{int(values.isna().sum())} missing value(s); fill them or drop those rows."
            )
        text = values.astype(str)
        if pattern is not None:
            capturing = re.compile(pattern).groups > 0
            found = text.str.extract(pattern if capturing else f"({pattern})", expand=False)
            if isinstance(found, pd.DataFrame):
                found = found.iloc[:, 0]
            if found.isna().any():
                first = text[found.isna()].iloc[0]
                raise DataError(
                    f"{self.table.source}: --group-pattern '{pattern}' does not match "
                    f"'{first}' in column '{column}'; adjust the pattern."
                )
            text = found
        codes: np.ndarray = pd.factorize(text)[0]
        return codes


def load_table(path: str, settings: Settings) -> LoadedTable:
    """Read a table, choose its columns, drop rows without a target and decide the task."""
    if not settings.data.target:
        raise UsageError("Name the target column with --target COL.")
    table = read(path, settings)
    return_freed_memory()  # the parser's buffers (pyarrow's reader: 0.12 GB of 1M x 100)
    return select_table(table, settings)


def frame_table(frame: pd.DataFrame, source: str = "the DataFrame") -> data.Table:
    """A table in memory as if read from a file; its checksum hashes the values and columns, so
    the provenance of a model fitted from Python still identifies its data."""
    import hashlib

    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update("\x1f".join(map(str, frame.columns)).encode("utf-8"))
    return data.Table(frame=frame, source=source, sha256=digest.hexdigest())


def select_table(table: data.Table, settings: Settings) -> LoadedTable:
    """Choose a table's columns, drop rows without a target and decide the task."""
    d = settings.data
    if not d.target:
        raise UsageError("Name the target column with --target COL.")
    extra_inputs = _join_labels(table, settings)
    drop = list(d.drop)
    if d.group is not None:
        if d.group not in table.frame.columns:
            raise DataError(f"{table.source}: --group column '{d.group}' does not exist.")
        if d.group not in d.target and d.group not in d.id:
            drop.append(d.group)
    ids = d.id
    if not ids and table.id_column is not None and table.id_column not in d.target:
        ids = (table.id_column,)  # R row names, the --transpose corner cell
    features = [*d.features, *features_file(d.features_file, table, d.strict)]
    selection = data.select_columns(
        table.frame,
        d.target,
        ids,
        features or None,
        drop,
        d.categorical,
        source=table.source,
        numeric=d.numeric,
        strict=d.strict,
    )
    _check_unique_ids(table, selection.ids, d.group, d.strict)
    frame, n_dropped = data.drop_missing_targets(
        table.frame, selection.targets, source=table.source
    )
    if n_dropped:
        LOG.warning(f"{table.source}: dropped {n_dropped} row(s) whose target is missing.")
    table.frame = frame
    task = data.detect_task(frame, selection.targets, d.task, source=table.source)
    how = "detected; override with --task" if d.task == "auto" else "set with --task"
    task = choose_positive(task, d.positive_class)
    positive = ""
    if tasks.get(task.task).has_positive_class and task.labels:
        why = "--positive-class" if d.positive_class else "change it with --positive-class"
        positive = f" Positive class: '{task.labels[1]}' ({why})."
    LOG.info(f"Task: {task.task}, {how}. Why: {task.reason}.{positive}")
    check_class_count(task, len(frame), table.source, d.strict)
    return LoadedTable(table, selection, task, n_dropped, extra_inputs)


def _join_labels(table: data.Table, settings: Settings) -> dict[str, str]:
    """`--labels FILE --on COL`: add the sample sheet's columns to each row of DATA with the
    same ID. Rows of DATA without an entry get missing targets (dropped with a warning later);
    both kinds of unmatched IDs are counted and named in one warning."""
    d = settings.data
    if d.labels is None:
        if d.on is not None:
            raise UsageError("--on names the ID column of a --labels sample sheet; add --labels.")
        return {}
    on = d.on or table.id_column
    if on is None:
        raise UsageError("--labels needs --on COL, the ID column shared by both tables.")
    sheet = data.read_table(
        d.labels, na_values=d.na_values, encoding=d.encoding, text_columns=(on,)
    )
    for where, frame in ((table.source, table.frame), (sheet.source, sheet.frame)):
        if on not in frame.columns:
            raise DataError(f"--on column '{on}' not found in '{where}'.")
    keys = sheet.frame[on].astype(str)
    if keys.duplicated().any():
        first = keys[keys.duplicated()].iloc[0]
        raise DataError(
            f"'{sheet.source}': the --on column '{on}' repeats '{first}'; a sample sheet needs "
            "one row per ID."
        )
    shared = sorted(set(sheet.frame.columns) & set(table.frame.columns) - {on})
    if shared:
        raise DataError(
            f"Columns {', '.join(map(repr, shared[:5]))} are in both '{table.source}' and "
            f"'{sheet.source}'; drop them from one table."
        )
    ids = table.frame[on].astype(str)
    unlabelled = ids[~ids.isin(set(keys))]
    unused = keys[~keys.isin(set(ids))]
    if len(unlabelled) or len(unused):
        parts = []
        if len(unlabelled):
            parts.append(
                f"{len(unlabelled)} of {len(ids)} rows of '{table.source}' have no entry "
                f"(e.g. '{unlabelled.iloc[0]}')"
            )
        if len(unused):
            parts.append(
                f"{len(unused)} of {len(keys)} IDs of the sheet have no row in the data "
                f"(e.g. '{unused.iloc[0]}')"
            )
        warn_or_fail(f"--labels '{sheet.source}' joined on '{on}': {'; '.join(parts)}.", d.strict)
    extra = sheet.frame.drop(columns=on).set_axis(keys.to_numpy())
    joined = extra.reindex(ids.to_numpy()).reset_index(drop=True)
    table.frame = pd.concat([table.frame.reset_index(drop=True), joined], axis=1)
    return {sheet.source: sheet.sha256}


def features_file(path: str | None, table: data.Table, strict: bool) -> list[str]:
    """`--features-file`: names one a line; names the table lacks are counted in a warning."""
    if path is None:
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"Cannot read --features-file '{path}': {error}.") from None
    names = [line.split("#", 1)[0].strip() for line in lines]
    names = list(dict.fromkeys(name for name in names if name))
    if not names:
        raise UsageError(f"--features-file '{path}' lists no column names.")
    present = {str(c) for c in table.frame.columns}
    absent = [name for name in names if name not in present]
    if len(absent) == len(names):
        raise DataError(
            f"None of the {len(names)} names in --features-file '{path}' is a column of "
            f"'{table.source}' (first: '{names[0]}'); check the file and the table's layout "
            "(--transpose)."
        )
    if absent:
        shown = ", ".join(f"'{n}'" for n in absent[:5]) + (", ..." if len(absent) > 5 else "")
        warn_or_fail(
            f"{len(absent)} of the {len(names)} names in --features-file '{path}' are not "
            f"columns of '{table.source}' and are skipped: {shown}.",
            strict,
        )
    return [name for name in names if name in present]


def _top_variance(
    frame: pd.DataFrame, selection: data.ColumnSelection, n: int | None
) -> data.ColumnSelection:
    """`--top-variance N`: the N numeric features that vary most on these (training) rows, in
    table order; categorical features stay. Fitted per training set, so cv folds do not leak."""
    numeric = selection.numeric
    if n is None or n >= len(numeric):
        return selection
    values = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: NaN, last
        variance = np.nanvar(values, axis=0)
    order = np.argsort(-np.nan_to_num(variance, nan=-1.0), kind="stable")
    keep = {numeric[i] for i in order[:n]}
    features = [c for c in selection.features if c in keep or c in selection.categorical]
    low, high = float(variance[order[n - 1]]), float(variance[order[0]])
    LOG.info(
        f"--top-variance {n}: kept the {n} most variable of {len(numeric)} numeric features "
        f"(variance {low:.3g} to {high:.3g} on the training rows)."
    )
    return dataclasses.replace(selection, features=features)


def choose_positive(task: data.TaskInfo, positive: str | None) -> data.TaskInfo:
    """`--positive-class LABEL` puts LABEL second: a binary model's output is P(labels[1])."""
    if positive is None:
        return task
    if not tasks.get(task.task).has_positive_class or task.labels is None:
        raise UsageError(
            f"--positive-class applies to binary targets, but the task is {task.task}; "
            "leave it out."
        )
    if positive not in task.labels:
        raise UsageError(
            f"--positive-class got '{positive}'; choose one of: {', '.join(task.labels)}."
        )
    others = [label for label in task.labels if label != positive]
    return data.TaskInfo(task.task, task.reason, [*others, positive])


def check_class_count(task: data.TaskInfo, n_rows: int, source: str, strict: bool) -> None:
    """More classes than sqrt(n) leaves a handful of samples per class: often an ID or a
    measurement given as --target, rarely a label worth learning."""
    if not tasks.get(task.task).checks_class_count or task.labels is None:
        return
    limit = math.sqrt(n_rows)
    if len(task.labels) > limit:
        warn_or_fail(
            f"{source}: the target has {len(task.labels)} classes in {n_rows} rows (more than "
            f"the square root of the row count, {limit:.1f}); is it really a label? For a "
            "numeric quantity pass --task regression.",
            strict,
        )


def _check_unique_ids(
    table: data.Table, ids: Sequence[str], group: str | None, strict: bool
) -> None:
    """Repeated IDs (several samples per patient) are carried into predictions as they are;
    the warning points at --group, which keeps such rows on one side of the split."""
    if not ids:
        return
    key = (
        table.frame[list(ids)].astype(str).agg("\x1f".join, axis=1)
        if len(ids) > 1
        else (table.frame[ids[0]])
    )
    repeated = key.duplicated(keep=False)
    if repeated.any():
        rows = np.flatnonzero(repeated.to_numpy())
        first = key.iloc[rows[0]]
        second = rows[1:][(key.iloc[rows[1:]] == first).to_numpy()][0]
        value = table.frame[list(ids)].iloc[rows[0]].tolist()
        shown = value[0] if len(value) == 1 else tuple(value)
        n_values = int(key[repeated].nunique())
        advice = (
            ""
            if group is not None
            else f" If rows with one ID belong together (one patient), pass --group {ids[0]} so "
            "they stay on one side of the split."
        )
        warn_or_fail(
            f"{table.source}: ID column(s) {', '.join(ids)} repeat {n_values} value(s) in "
            f"{len(rows)} rows, e.g. {shown!r} in data rows {rows[0] + 1} and {second + 1}; "
            f"they are carried into predictions as they are.{advice}",
            strict,
        )


def encode_split(
    loaded: LoadedTable,
    settings: Settings,
    train_frame: pd.DataFrame,
    valid_frame: pd.DataFrame | None,
    split: pd.DataFrame | None = None,
    inputs: dict[str, str] | None = None,
    sample_weight: np.ndarray | None = None,
    overwrite: tuple[np.ndarray, np.ndarray] | None = None,
) -> PreparedData:
    """Fit preprocessing and target encoding on the training rows, then encode both sides.

    Regression targets are standardised with the training rows' statistics only, so nothing
    leaks from validation (or a cross-validation fold) into training. `sample_weight` (one per
    training row, from the Python API) multiplies the class weights. `overwrite` (the sorted
    training and validation row indices of `loaded.frame`, whose rows the two frames are)
    writes the features over the table's own numeric matrix where they fit (`_encode_over`):
    for a caller that owns the table and never reads its numbers again.
    """
    p = settings.preprocess
    task = loaded.task
    selection = _top_variance(train_frame, loaded.selection, p.top_variance)
    encoder = TargetEncoder().fit(train_frame, selection.targets, task.task, task.labels)
    pre = Preprocessor(
        impute=p.impute,
        fill_value=p.fill_value,
        missing_indicators=p.missing_indicators,
        scale=p.scale,
        clip=p.clip,
        log1p=p.log1p,
        max_levels=p.max_levels,
        min_level_count=p.min_level_count,
        high_cardinality=p.high_cardinality,
        strict=settings.data.strict,
    )
    dtype = np.dtype(settings.model.dtype)
    n_rows = len(train_frame) + (0 if valid_frame is None else len(valid_frame))
    # The encoded targets and the network's outputs on them: (rows x outputs) several times.
    check_memory(
        4.0 * n_rows * encoder.n_outputs * dtype.itemsize,
        f"Encoding {n_rows:,} rows for {encoder.n_outputs:,} network outputs (classes)",
        "merge rare classes, or train on fewer rows.",
    )
    pre.fit(train_frame, selection.features, selection.categorical)
    # Targets first: a numeric target may live in the matrix the features overwrite.
    y_index, Y = encode_targets(encoder, train_frame, dtype)
    has_valid = valid_frame is not None and len(valid_frame) > 0
    Y_val = y_index_val = None
    if valid_frame is not None and has_valid:
        y_index_val, Y_val = encode_targets(encoder, valid_frame, dtype)
    encoded = None if overwrite is None else _encode_over(pre, loaded, overwrite, dtype)
    X, X_val = (pre.transform(train_frame, dtype), None) if encoded is None else encoded
    if X_val is None and valid_frame is not None and has_valid:
        X_val = pre.transform(valid_frame, dtype)
    weight = settings.train.class_weight
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=dtype)
    if weight is not None:
        by_class = encoder.class_weights(y_index, weight).astype(dtype)
        sample_weight = by_class if sample_weight is None else sample_weight * by_class
    return PreparedData(
        X=X,
        Y=Y,
        y_index=y_index,
        X_val=X_val,
        Y_val=Y_val,
        y_index_val=y_index_val,
        sample_weight=sample_weight,
        preprocessor=pre,
        target_encoder=encoder,
        task=task,
        selection=selection,
        inputs=inputs or {loaded.table.source: loaded.table.sha256},
        n_rows=len(loaded.frame),
        n_dropped_targets=loaded.n_dropped,
        split=split if split is not None else pd.DataFrame(),
    )


#: Rows encoded at a time when the features overwrite the table's matrix (`_encode_over`):
#: each block's float64 numeric matrix and copies are its transient (16,384 x 100: ~20 MB).
OVERWRITE_ROWS = 16_384


def _table_matrix(frame: pd.DataFrame, dtype: np.dtype) -> tuple[np.ndarray, list[str]] | None:
    """The writable C-ordered (rows, k) array of `dtype` whose columns are the frame's numeric
    columns (the block reader's matrix, `astype`'s block), with the names of the columns that
    view it; None when there is no such array.

    Never the table cache's memory map (copy-on-write): joblib sends an array backed by a
    memory map to its worker processes as the file's name, so X written over it would reach
    them as the file's raw cells (`--ensemble-groups` with `--n-jobs 2` trained on those).
    Writing over the map saves no anonymous memory (each page written turns private); it only
    spares the map's file pages, which the kernel may drop."""
    numeric = [name for name, kind in frame.dtypes.items() if kind == dtype]
    for name in numeric:
        matrix = _row_major_root(frame[name].to_numpy(), len(frame))
        if matrix is not None and not isinstance(matrix, np.memmap) and matrix.flags.writeable:
            names = [c for c in numeric if np.may_share_memory(frame[c].to_numpy(), matrix)]
            return matrix, names
    return None


def _encode_over(
    pre: Preprocessor, loaded: LoadedTable, sides: tuple[np.ndarray, np.ndarray], dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(X, X_val) of the sorted rows `sides` of `loaded.frame`, written over the table's numeric
    matrix instead of beside it (1M x 100: the peak is one table, not a table and X); None when
    the encoded rows are wider than the matrix's or it has another dtype.

    The training rows are encoded `OVERWRITE_ROWS` at a time from the front: encoded row r
    ends at r * n_out + n_out <= (r + 1) * k floats, never beyond the start of a source row not
    read yet (rows sorted, source row >= r). The validation rows, encoded first and aside, are
    copied in behind them. The overwritten columns leave `loaded.frame`; X and X_val are views
    of the one matrix, the same values as `Preprocessor.transform` of each side.
    """
    frame, (train, valid) = loaded.frame, sides
    found = _table_matrix(frame, dtype)
    n_out = pre.n_features_out
    if found is None or n_out > found[0].shape[1] or n_out == 0:
        return None
    matrix, names = found
    if (np.diff(train) <= 0).any():
        return None
    # A level column warns once per call about levels training never saw: those rows in one.
    numeric = set(pre.input_kinds().values()) == {"numeric"}
    step = OVERWRITE_ROWS if numeric else max(len(valid), 1)
    aside = np.empty((len(valid), n_out), dtype)
    for start in range(0, len(valid), step):
        rows = valid[start : start + step]
        pre.transform(rows_of(frame, rows), dtype, out=aside[start : start + len(rows)])
    flat = matrix.reshape(-1).view(np.ndarray)  # a view: the matrix is C-ordered
    block = np.empty((min(OVERWRITE_ROWS, len(train)), n_out), dtype)
    for start in range(0, len(train), OVERWRITE_ROWS):
        rows = train[start : start + OVERWRITE_ROWS]
        pre.transform(rows_of(frame, rows), dtype, out=block[: len(rows)])
        flat[start * n_out : (start + len(rows)) * n_out] = block[: len(rows)].reshape(-1)
    loaded.table.frame = frame.drop(columns=names)  # their cells now hold X: never read them
    end = len(train) * n_out
    X = flat[:end].reshape(len(train), n_out)
    if not len(valid):
        return X, None
    X_val = flat[end : end + aside.size].reshape(aside.shape)
    X_val[...] = aside
    return X, X_val


def prepare_data(path: str, settings: Settings, rng: np.random.Generator) -> PreparedData:
    """Everything before training: read, select, split, fit preprocessing on training rows."""
    loaded = load_table(path, settings)
    return_freed_memory()  # choosing columns and rows: unique IDs, missing targets
    prepared = prepare_loaded(loaded, settings, rng, overwrite_table=True)
    del loaded
    return_freed_memory()  # what encoding freed: the peak of training is ahead
    return prepared


def prepare_loaded(
    loaded: LoadedTable,
    settings: Settings,
    rng: np.random.Generator,
    sample_weight: np.ndarray | None = None,
    overwrite_table: bool = False,
) -> PreparedData:
    """Split a selected table and fit preprocessing on its training rows; `sample_weight` has
    one weight per row of `loaded.frame` and follows the rows into the training side. With
    `overwrite_table` (a table read for this call alone) the features may overwrite the
    table's numbers (`encode_split`)."""
    d = settings.data
    frame = loaded.frame
    inputs = {loaded.table.source: loaded.table.sha256, **loaded.extra_inputs}
    valid_frame: pd.DataFrame | None = None
    train_idx, valid_idx = np.arange(len(frame)), np.arange(0)
    if d.valid_file is not None:
        valid_table = read(d.valid_file, settings)
        valid_frame, n_valid_dropped = data.drop_missing_targets(
            valid_table.frame, loaded.selection.targets, source=valid_table.source
        )
        if n_valid_dropped:
            LOG.warning(
                f"{valid_table.source}: dropped {n_valid_dropped} row(s) whose target is missing."
            )
        inputs[valid_table.source] = valid_table.sha256
    elif d.valid_fraction > 0:
        train_idx, valid_idx = splitting.train_valid_split(
            len(frame),
            d.valid_fraction,
            rng,
            y=loaded.class_codes(),
            groups=loaded.group_codes(d.group, d.group_pattern),
            labels=loaded.task.labels,
            strict=d.strict,
        )
        valid_frame = rows_of(frame, valid_idx)
    train_frame = rows_of(frame, train_idx) if len(valid_idx) else frame
    split = _split_frame(frame, loaded.selection.ids, train_idx, valid_idx)
    if d.valid_file is not None and valid_frame is not None:
        # The --valid-file rows are listed after the training rows, as "valid".
        extra = _split_frame(
            valid_frame, loaded.selection.ids, np.arange(0), np.arange(len(valid_frame))
        )
        split = pd.concat([split, extra], ignore_index=True)
    weight = None if sample_weight is None else np.asarray(sample_weight)[train_idx]
    overwrite = (train_idx, valid_idx) if overwrite_table else None
    return encode_split(
        loaded, settings, train_frame, valid_frame, split, inputs, weight, overwrite
    )


def encode_targets(
    encoder: TargetEncoder, frame: pd.DataFrame, dtype: np.dtype
) -> tuple[Any, np.ndarray]:
    """(class indices, one-hot rows) for classification, (None, encoded targets) otherwise."""
    encoded = encoder.encode(frame, dtype)
    if encoder.classification:
        indices, one_hot = encoded  # (class indices, one-hot rows)
        return indices, one_hot
    return None, encoded


def _split_frame(
    frame: pd.DataFrame,
    ids: tuple[str, ...] | list[str],
    train_idx: np.ndarray,
    valid_idx: np.ndarray,
) -> pd.DataFrame:
    """Each sample's ID (or 1-based row number) and whether it trained or validated; the set
    is categorical, as out of core (a byte a row, not a pointer: 7 MB less held on 1M rows)."""
    codes = np.zeros(len(frame), dtype=np.int8)
    codes[valid_idx] = 1
    role = pd.Categorical.from_codes(codes, ["train", "valid"])
    out = (
        frame[list(ids)].reset_index(drop=True)
        if ids
        else pd.DataFrame({"row": np.arange(1, len(frame) + 1)})
    )
    out["set"] = role
    return out
