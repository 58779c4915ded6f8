"""Using a saved model on raw tables: streaming prediction and evaluation.

Tables are laid out like the training table (columns matched by name, extra columns ignored)
and read with the training run's reading options, from the table cache when it holds the file
(`open_chunks`). Prediction streams the table in chunks, so memory stays flat however many rows
come in, in three stages on their own threads: read a chunk; turn it into its predictions' CSV
text (preprocessing, the network, the cells), on one worker per core (`ordered_map`, each with
its own copy of the network); append the text in the chunks' order to a temporary file
(`data.write.text_writer`), renamed onto `--out` at the end.
`evaluate` streams the same way, keeping only outputs and targets. The two share the reading of
a table through a model (chunks, column checks, the summary of unseen levels), so they stay in
one module of about 750 lines. pandas is imported inside the functions that need it.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from mlpcli import describe, overlap
from mlpcli import task as tasks
from mlpcli.data.write import csv_text, output_format, text_writer
from mlpcli.errors import DataError, ModelFileError, UsageError
from mlpcli.outputs import STDOUT, provenance, sha256_file
from mlpcli.trained import (
    FORWARD_BLOCK,
    TrainedModel,
    check_ensemble,
    forward,
    load_trained,
    one_blas_thread,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlpcli.config import DataConfig, Settings
    from mlpcli.data import TableChunks
    from mlpcli.data.cache import EntryChunks, StoringChunks
    from mlpcli.target_encoding import TargetEncoder

log = logging.getLogger("mlpcli")

T = TypeVar("T")
R = TypeVar("R")

#: Table cells read at a time unless `--chunk-size` says how many rows: 25,000 rows of 100
#: features (~190 MB peak; 100,000 rows took 440 MB and were no faster), fewer for wide tables.
CHUNK_CELLS = 2_500_000
MAX_CHUNK_ROWS = 100_000


# --------------------------------------------------------------------------- reading
def model_settings(
    model: TrainedModel,
    sep: str | None,
    decimal: str | None,
    transpose: bool | None = None,
    path: str | None = None,
) -> Settings:
    """The training run's settings, with `--sep`/`--decimal`/`--transpose` overriding how DATA
    is read. The stored --sheet/--layer say how the training file was read: for a `path` of
    another format (the sheet saved as CSV) they are dropped, not refused as an unused option."""
    import dataclasses

    from mlpcli.config import Settings
    from mlpcli.data import check_reading_options, formats

    try:
        settings = Settings.from_dict(model.metadata.get("settings", {}))
        d = settings.data
        check_reading_options(d.sep, d.decimal, d.encoding)  # the stored ones, not --sep
        for name, value in (("sheet", d.sheet), ("layer", d.layer)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a name, not {value!r}")
    except (UsageError, TypeError, ValueError, AttributeError, KeyError) as exc:  # the file's
        raise ModelFileError(
            f"'{model.path}': the model's stored settings are invalid ({exc}); the file is "
            "damaged or was not written by mlpcli."
        ) from None
    if path is not None:
        kind = getattr(formats.reader_for(path), "name", None)
        d = dataclasses.replace(
            d,
            sheet=d.sheet if kind == "Excel" else None,
            layer=d.layer if kind == "AnnData" else None,
        )
        settings = dataclasses.replace(settings, data=d)
    given = {"sep": sep, "decimal": decimal, "transpose": transpose}
    changes = {k: v for k, v in given.items() if v is not None}
    return settings.replace(**changes) if changes else settings


def transposed_hint(model: TrainedModel, path: str, transposed: bool, settings: Settings) -> str:
    """When a table lacks the model's features, say so if it looks laid out the other way:
    its first column (or, read with --transpose, its header) holds the feature names."""
    from mlpcli import prepare
    from mlpcli.errors import MlpcliError

    if path == "-" or not Path(path).is_file():
        return ""
    plain = settings.replace(transpose=False)
    try:
        frame = prepare.read(path, plain).frame
    except MlpcliError:
        return ""
    names = {str(c) for c in frame.columns} if transposed else set(frame.iloc[:, 0].astype(str))
    features = model.preprocessor.input_columns
    found = sum(name in names for name in features)
    if found < max(1, len(features) // 2):
        return ""
    where = "header" if transposed else "first column"
    option = "--no-transpose" if transposed else "--transpose"
    return (
        f" Its {where} holds {found} of the model's {len(features)} feature names, so the table "
        f"looks {'not ' if transposed else ''}transposed (features as "
        f"{'columns' if transposed else 'rows'}); pass {option}."
    )


def open_chunks(
    model: TrainedModel,
    path: str,
    chunk_size: int | None,
    sep: str | None = None,
    decimal: str | None = None,
    text_columns: Sequence[str] = (),
    checksum: bool = True,
    extra_columns: Sequence[str] = (),
    transpose: bool | None = None,
) -> TableChunks | EntryChunks | StoringChunks:
    """A `data.TableChunks` reading `path` as the model's training table was read, parsing only
    the model's feature columns plus `text_columns` and `extra_columns`. With the table cache
    on (`cache.use`) and a regular file: the same chunks sliced from the file's cache entry
    when there is one (`cache.EntryChunks`: `train` on the file, or an earlier run, stored
    it), else parsed and stored for the next run (`cache.StoringChunks`)."""
    from mlpcli.data import cache

    settings = model_settings(model, sep, decimal, transpose, path)
    d = settings.data
    usecols = [*model.preprocessor.input_columns, *text_columns, *extra_columns]
    root = cache.active_root()
    if root is None or path == "-" or not Path(path).is_file():
        return _table_chunks(model, path, chunk_size, d, text_columns, usecols, checksum)
    keys = _cache_keys(settings, text_columns, usecols)
    for options in keys:
        entry = cache.lookup(root, path, options)
        # Only an entry with the text columns read as text ("007" stays "007") serves.
        if entry is not None and all(
            entry.kind(c) == "text" for c in text_columns if c in entry.columns
        ):
            log.debug("'%s': read from the table cache (%s).", path, entry.folder)
            entry.replay(path)
            return cache.EntryChunks(entry, path, chunk_rows(model, chunk_size), usecols)
    from mlpcli.data.read import captured_messages

    with captured_messages(path) as messages:  # what opening the file says, said again on a hit
        table = _table_chunks(model, path, chunk_size, d, text_columns, usecols, True)
    return cache.StoringChunks(table, root, keys[-1], path, messages)


def _cache_keys(
    settings: Settings, text_columns: Sequence[str], usecols: Sequence[str]
) -> list[dict[str, Any]]:
    """The reading options of the cache entries that can serve these columns: the whole
    table as `train` reads it (`train`, `cv` and `tune` store that), then only the columns
    read here (what a `predict` or `evaluate` that parsed the file stores)."""
    from mlpcli.outofcore import reading_options

    whole = reading_options(settings)
    return [whole, {**whole, "text_columns": list(text_columns), "columns": list(usecols)}]


def _table_chunks(
    model: TrainedModel,
    path: str,
    chunk_size: int | None,
    d: DataConfig,
    text_columns: Sequence[str],
    usecols: Sequence[str],
    checksum: bool,
) -> TableChunks:
    from mlpcli.data import TableChunks

    return TableChunks(
        path,
        chunk_rows(model, chunk_size),
        sep=d.sep,
        decimal=d.decimal,
        na_values=d.na_values,
        transpose=d.transpose,
        encoding=d.encoding,
        text_columns=text_columns,
        usecols=usecols,
        checksum=checksum,
        thousands=d.thousands,
        numeric=d.numeric,
        sheet=d.sheet,
        layer=d.layer,
    )


def chunk_rows(model: TrainedModel, chunk_size: int | None) -> int:
    """Rows per chunk: `chunk_size` (default: `CHUNK_CELLS` worth of feature columns) rounded
    up to whole forward blocks, so chunks start on block boundaries."""
    if chunk_size is None:
        # Cells read, or written: 10,000 classes make 10,000 probability columns per row.
        n_columns = max(1, len(model.preprocessor.input_columns), model.net.architecture.n_outputs)
        chunk_size = min(MAX_CHUNK_ROWS, CHUNK_CELLS // n_columns)
    if chunk_size < 1:
        raise UsageError(f"--chunk-size must be at least 1 row, got {chunk_size}.")
    return -(-chunk_size // FORWARD_BLOCK) * FORWARD_BLOCK


def prefetch(items: Iterable[T], depth: int = 1) -> Generator[T, None, None]:
    """Produce the next item on a helper thread while the caller works on this one.

    pandas parses CSV without holding the GIL, so reading chunk i+1 overlaps preprocessing,
    the forward pass and writing of chunk i on a second core. At most `depth` items wait, so
    memory stays bounded. Errors reach the caller at the item where they happened.
    """
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put(("item", item))
            slots.put(("end", None))
        except BaseException as error:  # handed to the consumer, never a thread traceback
            slots.put(("error", error))

    # The reader runs in the caller's context, so its messages know the running command.
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(work,), name="mlpcli-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():  # unblock a pending put, then let the worker see `stop`
            with suppress(queue.Empty):
                slots.get(timeout=0.05)
        worker.join()


def check_columns(
    model: TrainedModel,
    columns: Iterable[Any],
    source: str,
    targets: Sequence[str] = (),
    hint: Callable[[], str] = str,
) -> None:
    """Every feature (and target) column the model needs is in the table; names all missing
    (and adds `hint()`, e.g. that the table looks transposed)."""
    present = {str(c) for c in columns}
    for what, needed in (("target", targets), ("feature", model.preprocessor.input_columns)):
        missing = [c for c in needed if c not in present]
        if missing:
            shown = ", ".join(f"'{c}'" for c in missing[:50])
            more = f" and {len(missing) - 50} more" if len(missing) > 50 else ""
            raise DataError(
                f"'{source}' lacks {len(missing)} {what} column(s) the model needs: {shown}{more}; "
                "give a table with the columns of the training table (in any order)." + hint()
            )


#: The first row of the chunk a `predict` worker is computing: the warnings it logs are summed
#: in the table's order whichever worker logs first.
_FIRST_ROW: contextvars.ContextVar[int] = contextvars.ContextVar("mlpcli_first_row", default=0)


class _UnseenLevels(logging.Filter):
    """Sums the preprocessing's per-chunk warnings about unseen categorical levels into one
    warning per column for the whole table, the levels in the order of the rows."""

    PREFIX = "Column '%s': %d row(s) have levels not seen in training"

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[int, str, int, str]] = []  # (first row, column, rows, levels)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(record.msg, str) and record.msg.startswith(self.PREFIX)):
            return True
        if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[1], int)):
            return True
        self.found.append((_FIRST_ROW.get(), str(args[0]), args[1], str(args[2])))  # atomic
        return False

    def report(self) -> None:
        rows: dict[str, int] = {}
        levels: dict[str, dict[str, None]] = {}
        for _, name, count, shown in sorted(self.found, key=lambda found: found[0]):
            rows[name] = rows.get(name, 0) + count
            levels.setdefault(name, {}).update(dict.fromkeys(shown.split(", ")))
        for name, count in rows.items():
            seen = list(levels[name])
            shown = ", ".join(seen[:5]) + (", ..." if len(seen) > 5 else "")
            log.warning(
                f"Column '{name}': {count} row(s) have levels not seen in training ({shown}); "
                "they are encoded as all zeros."
            )


@contextmanager
def _unseen_level_summary() -> Iterator[None]:
    summary = _UnseenLevels()
    log.addFilter(summary)
    try:
        yield
    finally:
        log.removeFilter(summary)
    summary.report()


def _threshold(model: TrainedModel, threshold: float | None) -> float:
    """The decision threshold: the model's own (`train --threshold`, else 0.5) unless given;
    only binary and multilabel models have one."""
    if threshold is None:
        return model.threshold
    if not tasks.get(model.task).has_threshold:
        raise UsageError(
            f"--threshold applies to binary and multilabel models; '{model.path}' is a "
            f"{model.task} model."
        )
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold must lie in [0, 1], got {threshold}.")
    return float(threshold)


def _load(model: TrainedModel | str | Path) -> TrainedModel:
    if isinstance(model, (str, Path)):
        return load_trained(model)
    return model


def _hint(
    model: TrainedModel,
    path: str,
    sep: str | None,
    decimal: str | None,
    transpose: bool | None,
) -> Callable[[], str]:
    """`transposed_hint` for `check_columns`, computed only when columns are missing."""
    settings = model_settings(model, sep, decimal, transpose, path)
    return lambda: transposed_hint(model, path, settings.data.transpose, settings)


# --------------------------------------------------------------------------- predict
@dataclass(frozen=True)
class PredictOptions:
    """How `predict` reads DATA and what it writes."""

    ids: tuple[str, ...] | None = None  # None: the model's stored ID columns
    proba: bool = True
    threshold: float | None = None  # None: the model's (0.5 unless trained with one)
    chunk_size: int | None = None  # None: CHUNK_CELLS worth
    sep: str | None = None  # None: as in training
    decimal: str | None = None
    transpose: bool | None = None
    spread: bool = False  # the ensemble members' standard deviation per row


@dataclass
class PredictSummary:
    """What `predict_file` did."""

    out: str
    source: str
    n_rows: int
    n_chunks: int
    seconds: float
    columns: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.n_rows / self.seconds if self.seconds > 0 else math.inf


def id_columns(
    model: TrainedModel, columns: Iterable[Any], source: str, requested: Sequence[str] | None
) -> list[str]:
    """The ID columns to copy into the predictions: `--id` now, else those stored in the model.

    A stored ID column missing from the table falls back to row numbers with a warning; one
    named with `--id` now must exist.
    """
    present = {str(c) for c in columns}
    if requested:
        missing = [c for c in requested if c not in present]
        if missing:
            raise DataError(
                f"--id column(s) {', '.join(repr(c) for c in missing)} not found in '{source}'."
            )
        return list(dict.fromkeys(requested))
    stored = model.id_columns
    missing = [c for c in stored if c not in present]
    if missing:
        log.warning(
            f"'{source}' has no ID column {', '.join(repr(c) for c in missing)} (stored in the "
            "model); the predictions carry 1-based row numbers in a 'row' column instead. Name "
            "ID columns with --id."
        )
        return []
    return stored


def prediction_frame(
    model: TrainedModel,
    frame: pd.DataFrame,
    ids: Sequence[str] = (),
    proba: bool = True,
    threshold: float = 0.5,
    first_row: int = 1,
    spread: bool = False,
) -> pd.DataFrame:
    """Predictions for the rows of a raw table: ID columns (or `row` numbers from `first_row`),
    `prediction` (`prediction_<target>` for several targets) as label strings or original units,
    then `proba_<label>` per class for classification, then with `spread` the ensemble
    members' standard deviation of each probability (`spread_<label>`) or value (`spread`)."""
    import pandas as pd

    P, members = outputs(model, frame, spread)
    encoder = model.encoder
    out: dict[str, Any] = {}
    for name in ids:
        out[name] = _id_values(frame[name])
    if not ids:
        out["row"] = np.arange(first_row, first_row + len(frame))
    decoded = encoder.decode(P, threshold)
    targets = encoder.targets
    if len(targets) == 1:
        out["prediction"] = decoded.reshape(len(frame))
    else:
        for j, target in enumerate(targets):
            out[f"prediction_{target}"] = decoded[:, j]
    if proba:
        out.update(tasks.get(encoder.task).proba_columns(encoder.labels, P))
    if members is not None:
        out.update(spread_columns(encoder, members))
    return pd.DataFrame(out, copy=False)


def _id_values(column: pd.Series) -> Any:
    """An ID column as the output frame takes it. pandas 3's `str` columns keep their arrow
    array: `to_numpy()` makes one Python string per cell and the frame turns them back into arrow
    (measured on a 25,600-row chunk: 0.32-0.34 vs 0.15-0.17 us a row for the whole frame)."""
    import pandas as pd

    dtype = column.dtype
    if (
        isinstance(dtype, pd.StringDtype)
        and dtype.storage == "pyarrow"
        and dtype.na_value is np.nan
    ):
        return column.array
    return column.to_numpy()


#: The network's outputs for some rows, and with `spread` the members' (K, n, outputs).
Outputs = tuple[NDArray[Any], NDArray[Any] | None]


def outputs(model: TrainedModel, frame: pd.DataFrame, spread: bool = False) -> Outputs:
    """The network's outputs for the rows of `frame` (the members' mean for an ensemble), and
    with `spread` each member's."""
    members = forward(model, frame, members=True) if spread else None
    return (forward(model, frame) if members is None else members.mean(axis=0)), members


def spread_columns(encoder: TargetEncoder, members: NDArray[Any]) -> dict[str, NDArray[Any]]:
    """The members' standard deviation per row: of each class probability, or of each
    regression value in the target's units."""
    spec = tasks.get(encoder.task)
    if spec.classification:
        proba = np.stack([spec.probabilities(M) for M in members])
        names = [f"spread_{label}" for label in encoder.labels]
    else:
        proba = np.stack([np.asarray(encoder.decode(M), dtype=np.float64) for M in members])
        targets = encoder.targets
        names = ["spread"] if len(targets) == 1 else [f"spread_{t}" for t in targets]
    sd = proba.std(axis=0)
    return {name: sd[:, j] for j, name in enumerate(names)}


def predict_frame(
    model: TrainedModel | str | Path, frame: pd.DataFrame, options: PredictOptions | None = None
) -> pd.DataFrame:
    """`predict` on a table in memory, all rows at once."""
    model = _load(model)
    options = options or PredictOptions()
    ids = id_columns(model, frame.columns, "the table", options.ids)
    check_columns(model, frame.columns, "the table")
    threshold = _threshold(model, options.threshold)
    return prediction_frame(model, frame, ids, options.proba, threshold, spread=options.spread)


def predict_file(
    model: TrainedModel | str | Path,
    data_path: str,
    out: str = STDOUT,
    options: PredictOptions | None = None,
) -> PredictSummary:
    """`mlpcli predict`: stream DATA through the model into `out`, one chunk at a time."""
    started = time.perf_counter()
    model = _load(model)
    options = options or PredictOptions()
    threshold = _threshold(model, options.threshold)
    if options.spread:
        check_ensemble(model)
    if out != STDOUT:
        output_format(out)  # a bad name fails before any reading
    wanted = options.ids or tuple(model.id_columns)
    features = set(model.preprocessor.input_columns)
    text_ids = [c for c in wanted if c not in features]  # "007" stays "007"
    summary = PredictSummary(out=out, source=data_path, n_rows=0, n_chunks=0, seconds=0.0)
    ids: list[str] = []
    own_model = per_thread_model(model)

    def checked(chunks: Iterable[pd.DataFrame], source: str) -> Iterator[tuple[int, pd.DataFrame]]:
        """The chunks and the number of their first row, the first one's columns checked
        before any is computed."""
        first_row = 1
        for i, chunk in enumerate(chunks):
            if i == 0:
                hint = _hint(model, data_path, options.sep, options.decimal, options.transpose)
                check_columns(model, chunk.columns, source, hint=hint)
                ids.extend(id_columns(model, chunk.columns, source, options.ids))
            yield first_row, chunk
            first_row += len(chunk)

    def rows_text(numbered: tuple[int, pd.DataFrame]) -> tuple[list[str], int, str]:
        """A chunk's predictions as text (the header before the first row's)."""
        first_row, chunk = numbered
        _FIRST_ROW.set(first_row)  # in this call's own context (`ordered_map`)
        frame = prediction_frame(
            own_model(), chunk, ids, options.proba, threshold, first_row, options.spread
        )
        return list(frame.columns), len(frame), csv_text(frame, sep, first_row == 1)

    with (
        open_chunks(
            model,
            data_path,
            options.chunk_size,
            options.sep,
            options.decimal,
            text_ids,
            checksum=False,
            transpose=options.transpose,
        ) as table,
        text_writer(out) as (sep, write),
        _unseen_level_summary(),
        # Held for the whole run: the workers' own one-thread contexts then never restore
        # BLAS's threads while another worker's forward pass is running.
        one_blas_thread(),
        # The reading thread parses chunk i+3 while `PREDICT_WORKERS` threads turn chunks
        # i+1 and i+2 into text (preprocessing, the network, the CSV cells) and this one
        # writes chunk i's. Each stops before what it reads closes (the reader before the file).
        closing(prefetch(table)) as chunks,
        closing(ordered_map(rows_text, checked(chunks, table.source), predict_workers())) as done,
    ):
        summary.source = table.source
        for columns, n_rows, text in done:
            write(text)
            summary.columns = columns
            summary.n_rows += n_rows
            summary.n_chunks += 1
    summary.seconds = time.perf_counter() - started
    return summary


#: Threads that compute chunks at once in `predict`: one per core, at most 2. With one, the
#: network alone (1.5 of 3.1 us a row of a cached run's CPU, main case) kept one core busy
#: while the writer's left the other half idle.
MAX_PREDICT_WORKERS = 2


def predict_workers() -> int:
    return max(1, min(MAX_PREDICT_WORKERS, os.cpu_count() or 1))


def per_thread_model(model: TrainedModel) -> Callable[[], TrainedModel]:
    """The model for the calling thread: its own copy of the network (whose layers reuse
    scratch arrays, so two threads must not share one), the same weights and preprocessing:
    the same bits."""
    local = threading.local()

    def own() -> TrainedModel:
        found: TrainedModel | None = getattr(local, "model", None)
        if found is None:
            found = local.model = dataclasses.replace(model, net=copy.deepcopy(model.net))
        return found

    return own


def ordered_map(
    function: Callable[[T], R], items: Iterable[T], workers: int
) -> Generator[R, None, None]:
    """`map(function, items)` on `workers` threads, results in the items' order. At most
    `workers` items are taken ahead of the caller (bounded memory: while the caller uses a
    result, one worker waits); an error reaches the caller at its item. Each call runs in a
    copy of the caller's context (messages know the running command)."""
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="mlpcli-predict") as pool:
        try:
            for item in items:
                pending.append(pool.submit(contextvars.copy_context().run, function, item))
                if len(pending) >= workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


# --------------------------------------------------------------------------- evaluate
def _unknown_labels(frame: pd.DataFrame, known: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    from mlpcli.cells import level_codes

    found: dict[str, set[str]] = {}
    for target, labels in known.items():
        unknown = set(level_codes(frame[target])[1]) - set(labels)
        if unknown:
            found[target] = unknown
    return found


def _truth(encoder: TargetEncoder, frame: pd.DataFrame) -> NDArray[Any]:
    """Class indices (n,), a 0/1 matrix (n, t) for multilabel, or values (n, t) in original
    units for regression (read as given, not through the float32 standardisation)."""
    if encoder.classification:
        return np.asarray(encoder.encode(frame)[0])
    from mlpcli.cells import check_numbers, numeric_values

    check_numbers(frame, encoder.targets, what="Target")
    return np.column_stack([numeric_values(frame[t], t, what="Target") for t in encoder.targets])


@dataclass
class Evaluation:
    """The JSON document of `evaluate` and the arrays behind it, for `plotting.evaluation_plots`:
    `y_true` class indices, a 0/1 matrix (multilabel) or true values; `outputs` probabilities
    (the network's own columns) or predictions in the target's units (regression); `labels`
    the class labels, or the target names for multilabel and regression."""

    document: dict[str, Any]
    y_true: NDArray[Any] | None  # None unless asked for (`keep_arrays`)
    outputs: NDArray[Any] | None
    labels: list[str]


def evaluate_file(
    model_path: str | Path,
    data_path: str,
    *,
    threshold: float | None = None,
    sep: str | None = None,
    decimal: str | None = None,
    chunk_size: int | None = None,
    command: list[str] | None = None,
    transpose: bool | None = None,
) -> dict[str, Any]:
    """`mlpcli evaluate`: metrics of a saved model on a table with the target column(s).

    Rows whose target is missing are left out and counted; labels the model never saw are an
    error naming them all. Streams like `predict`; the metrics too (`Task.report_stream`).
    """
    return evaluate_table(
        model_path,
        data_path,
        threshold=threshold,
        sep=sep,
        decimal=decimal,
        chunk_size=chunk_size,
        command=command,
        transpose=transpose,
        keep_arrays=False,
    ).document


def evaluate_table(
    model_path: str | Path,
    data_path: str,
    *,
    threshold: float | None = None,
    sep: str | None = None,
    decimal: str | None = None,
    chunk_size: int | None = None,
    command: list[str] | None = None,
    transpose: bool | None = None,
    command_name: str = "evaluate",
    keep_arrays: bool = True,
) -> Evaluation:
    """`evaluate_file`, keeping the arrays for plots unless `keep_arrays` is false; then the
    metrics are streamed chunk by chunk (classification keeps counts and scores, a few bytes
    a row: tables larger than memory). `command_name` is the command the warning about
    training rows names."""
    model = load_trained(model_path)
    cut = _threshold(model, threshold)
    encoder = model.encoder
    targets = encoder.targets
    known = model.encoder.known_values()
    unknown: dict[str, set[str]] = {}
    outputs: list[NDArray[Any]] = []
    truths: list[NDArray[Any]] = []
    stream = tasks.get(encoder.task).report_stream(encoder, cut)
    n_rows = n_missing = n_scored = 0
    ids = model.id_columns
    text_ids = [c for c in ids if c not in set(model.preprocessor.input_columns)]
    same_rows = overlap.OverlapCheck(model.metadata)
    with (
        open_chunks(
            model,
            data_path,
            chunk_size,
            sep,
            decimal,
            text_ids,
            extra_columns=targets,
            transpose=transpose,
        ) as table,
        _unseen_level_summary(),
        closing(prefetch(table)) as chunks,
    ):
        for chunk in chunks:
            if n_rows == 0:
                hint = _hint(model, data_path, sep, decimal, transpose)
                check_columns(model, chunk.columns, table.source, targets, hint)
            if ids and all(c in chunk.columns for c in ids):
                same_rows.add(overlap.row_ids([chunk[c].tolist() for c in ids]))
            n_rows += len(chunk)
            present = chunk[targets].notna().all(axis=1).to_numpy()
            n_missing += int((~present).sum())
            rows = chunk if present.all() else chunk.loc[present]
            for target, labels in _unknown_labels(rows, known).items():
                unknown.setdefault(target, set()).update(labels)
            if unknown or len(rows) == 0:
                continue  # keep reading only to name every unknown label
            P, truth = forward(model, rows), _truth(encoder, rows)
            if keep_arrays:
                outputs.append(P)
                truths.append(truth)
            stream.add(truth, P)
            n_scored += len(truth)
        data_sha256 = table.sha256()
    source = table.source
    found = same_rows.result(source, data_sha256)
    warning = found.warning(command_name)
    if warning:
        log.warning(warning)
    for target, labels in unknown.items():
        raise DataError(
            f"'{source}': target '{target}' has label(s) the model was not trained on: "
            f"{', '.join(repr(v) for v in sorted(labels))}; the model knows "
            f"{', '.join(repr(v) for v in known[target])}."
        )
    if n_missing:
        log.warning(f"'{source}': left out {n_missing} row(s) whose target is missing.")
    if not n_scored:
        raise DataError(
            f"'{source}': no row has a value in target column(s) {', '.join(targets)}; "
            "nothing to evaluate."
        )
    report = stream.report()
    inputs = {str(model_path): sha256_file(model_path), source: data_sha256}
    document = {
        "model": str(model_path),
        "preset": describe.preset_name(model.metadata),  # e.g. "auto -> realmlp_td"
        "data": source,
        "task": encoder.task,
        "targets": targets,
        "labels": encoder.labels,
        "threshold": cut if tasks.get(model.task).has_threshold else None,
        "n_rows": n_rows,
        "n_evaluated": n_rows - n_missing,
        "n_missing_target": n_missing,
        "metrics": report,
        "data_overlap": found.document(),
        "provenance": provenance(command, inputs, None),
    }
    regression = not encoder.classification
    kept = np.concatenate(outputs) if keep_arrays else None
    return Evaluation(
        document,
        np.concatenate(truths) if keep_arrays else None,
        encoder.decode(kept) if regression and kept is not None else kept,
        encoder.targets if regression else encoder.labels,
    )
