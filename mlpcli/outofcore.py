"""Training on a table larger than memory (`train --out-of-core auto|on|off`; `cv` and `tune`
build each fold the same way, `crossval.fold_out_of_core`, and `explain.ondisk` explains from
the same cache entry).

The table (CSV/TSV, Parquet in row-group batches, Excel, AnnData) is converted once, in chunks
of `CHUNK_ROWS` rows, into the table cache
(`data.cache`: memory-mapped float32 numbers, text as int32 codes, the file's row order); a
second run on the same file finds it there. Then, never holding the table:

1. columns are chosen on the first `HEAD_ROWS` rows, the task on the whole target column (its
   distinct values, gathered block by block: `scan_table`);
2. validation rows are chosen by a hash of each row's ID (its group with --group, else its row
   number) and the seed (`sampling.row_hash_valid`; not stratified);
3. one streaming pass over the training rows fits the preprocessing (`streaming`: exact means,
   spreads, ranges and levels; median and quartiles within a stated rank error);
4. one pass encodes the rows into two float32 row files (training, validation) in a temporary
   folder beside the cache entry, removed when training is done; targets and weights stay in
   memory (rows x outputs);
5. training reads shuffled blocks of rows from the training file (`sampling.BlockBatches`);
   validation and the final metrics read the files block by block (the metrics over every
   row, streamed: `metric_streams`).

`auto` switches on when in-memory training would not fit: `IN_MEMORY_FACTOR` times the float32
matrix (rows x columns x 4 bytes, rows estimated from the file size and the length of the first
lines) above the memory available (MemAvailable, or the cgroup's limit, or the address-space
limit, whichever is least). It says so on stderr either way it decides to switch.

Results differ from in-memory training of the same table and seed, by design and in three
places: the validation rows (a hash instead of a stratified shuffle), the batch order (block
shuffling instead of a permutation of all rows) and the median/quartiles beyond `SKETCH_K`
rows (within the sketch's rank error). `tests/test_outofcore.py` bounds the difference.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpcli.errors import DataError, UsageError, choose
from mlpcli.limits import format_bytes, physical_memory
from mlpcli.sampling import RowFile, RowFileWriter, row_hash_valid

if TYPE_CHECKING:
    import pandas as pd

    from mlpcli.config import Settings
    from mlpcli.data.cache import Entry
    from mlpcli.prepare import PreparedData
    from mlpcli.target_encoding import TargetEncoder

LOG = logging.getLogger("mlpcli")

#: Rows per chunk when converting and per block when passing over the cached table.
CHUNK_ROWS = 65_536
#: Rows the column selection looks at (types, ID-like columns).
HEAD_ROWS = 100_000
#: In-memory training's peak over the float32 feature matrix (parsing, the frame, the encoded
#: copy, the split): the factor `auto` compares with the available memory.
IN_MEMORY_FACTOR = 4.0
#: Decompressed over compressed size assumed for gzip/bz2/xz/zip/zstd tables.
COMPRESSION_RATIO = 4.0
#: Bytes of the file's start looked at to estimate its row count.
SAMPLE_BYTES = 1 << 20


# --------------------------------------------------------------------------- the switch
@dataclass(frozen=True)
class Estimate:
    """What in-memory training of a file would need, against what this process may use."""

    rows: int
    columns: int
    matrix_bytes: float
    needed_bytes: float
    available_bytes: int
    #: Where the row count comes from.
    basis: str = "estimated from the file size"

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.available_bytes

    def describe(self) -> str:
        return (
            f"its float32 matrix is about {format_bytes(self.matrix_bytes)} (~{self.rows:,} rows "
            f"x {self.columns:,} columns, {self.basis}); training in memory "
            f"needs about {IN_MEMORY_FACTOR:g}x that, {format_bytes(self.needed_bytes)}, "
            f"against {format_bytes(self.available_bytes)} available"
        )


def _auto(path: str, estimate: Estimate | None, doing: str) -> bool:
    if estimate is None:
        return False
    if estimate.fits:
        LOG.debug(f"'{path}' is {doing} in memory: {estimate.describe()}.")
        return False
    LOG.warning(
        f"'{path}' is {doing} out of core (from the table cache on disk): "
        f"{estimate.describe()}. Pass --out-of-core off to work in memory anyway."
    )
    return True


def _on(path: str, estimate: Estimate | None, doing: str) -> bool:
    if estimate is None:
        raise UsageError(
            f"--out-of-core on applies to delimited text tables on disk (CSV/TSV, maybe "
            f"compressed), Parquet, Excel and AnnData .h5ad files, not to '{path}'; convert it "
            "to CSV or Parquet, or pass --out-of-core off."
        )
    LOG.info(f"'{path}' is {doing} out of core (--out-of-core on): {estimate.describe()}.")
    return True


def _off(path: str, estimate: Estimate | None, doing: str) -> bool:
    return False


#: --out-of-core value -> f(path, estimate or None when the input cannot stream, what is done
#: with it: "trained") -> switch on?
MODES: dict[str, Callable[[str, Estimate | None, str], bool]] = {
    "auto": _auto,
    "on": _on,
    "off": _off,
}


def available_memory() -> int:
    """Bytes this process may still allocate: the least of MemAvailable, the memory cgroup's
    limit (v1 or v2) and the address-space limit; the RAM size when none is known."""
    found = [physical_memory()]
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            files = (
                [f"/sys/fs/cgroup/memory{where}/memory.limit_in_bytes"]
                if "memory" in controllers.split(",")
                else [f"/sys/fs/cgroup{where}/memory.max"]
                if controllers == ""
                else []
            )
            for name in files:
                with contextlib.suppress(OSError, ValueError):
                    text = Path(name).read_text().strip()
                    if text != "max":
                        found.append(int(text))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        found.append(int(soft))
    return min(found)


def estimate(path: str, sep: str | None = None) -> Estimate | None:
    """In-memory training's memory for a table on disk: a text table's from its size and first
    lines, Parquet, Excel and AnnData from the file's metadata; None for stdin and formats
    that are not streamed (Feather)."""
    from mlpcli.data import formats
    from mlpcli.data.codecs import CODECS

    if path == "-" or not Path(path).is_file():
        return None
    reader = formats.reader_for(path)
    if reader is not None:
        shape = _anndata_shape(path) if reader.name == "AnnData" else reader.shape(path)
        if shape is None:
            return None
        matrix = 4.0 * shape[0] * shape[1]
        return Estimate(
            *shape,
            matrix,
            IN_MEMORY_FACTOR * matrix,
            available_memory(),
            "from the file's metadata",
        )
    size = os.path.getsize(path)
    compressed = Path(path).suffix.lower() in CODECS
    with contextlib.ExitStack() as stack:
        if compressed:
            from mlpcli.data.chunks import TableChunks

            chunks = stack.enter_context(TableChunks(path, 1000, sep=sep, checksum=False))
            head = next(iter(chunks))
            columns = head.shape[1]
            sample = head.to_csv(index=False).encode()
            size = int(size * COMPRESSION_RATIO)
        else:
            with open(path, "rb") as handle:
                sample = handle.read(SAMPLE_BYTES)
            columns = 0
    lines = sample.split(b"\n")
    if len(lines) > 2 and len(sample) == SAMPLE_BYTES:
        lines = lines[:-1]  # the sample ends inside a line
    if not columns:
        header = lines[0].decode("utf-8", errors="replace")
        delimiter = sep or max(",\t;|", key=header.count)
        columns = header.count(delimiter) + 1
    body = sum(len(line) + 1 for line in lines[1:]) or 1
    rows = max(1, round((size - len(lines[0])) / (body / max(1, len(lines) - 1))))
    matrix = 4.0 * rows * columns
    return Estimate(rows, columns, matrix, IN_MEMORY_FACTOR * matrix, available_memory())


def _anndata_shape(path: str) -> tuple[int, int] | None:
    """(cells, genes + obs columns) of an .h5ad file from its metadata (X is not read); None
    when h5py is missing or the file is not AnnData (reading it says why)."""
    try:
        import h5py
    except ImportError:
        return None
    try:
        with h5py.File(path, "r") as handle:
            X = handle["X"]
            shape = X.shape if isinstance(X, h5py.Dataset) else tuple(X.attrs["shape"])
            return int(shape[0]), int(shape[1]) + len(handle["obs"].keys())
    except (OSError, KeyError, TypeError, ValueError):
        return None


def wanted(path: str, mode: str, sep: str | None = None, doing: str = "trained") -> bool:
    """Whether to work on `path` out of core under `--out-of-core MODE`; logs the decision,
    saying what is `doing` with it ("trained", "cross-validated")."""
    decide: Callable[[str, Estimate | None, str], bool] = choose("--out-of-core", mode, MODES)
    if mode == "off":
        return False
    return decide(path, estimate(path, sep), doing)


# --------------------------------------------------------------------------- the cache entry
def reading_options(settings: Settings) -> dict[str, Any]:
    """The cache key's reading options, as `read_table` builds them for this table."""
    d = settings.data
    return {
        "sep": d.sep,
        "decimal": d.decimal,
        "na_values": None if d.na_values is None else list(d.na_values),
        "transpose": d.transpose,
        "encoding": d.encoding,
        "text_columns": list(d.id),
        "thousands": d.thousands,
        "numeric": list(d.numeric),
        "sheet": d.sheet,
        "layer": d.layer,
        "columns": None,
    }


def cached_table(path: str, settings: Settings) -> Entry:
    """The table's cache entry, converted in chunks (flat memory) when it is not there yet."""
    from mlpcli.data import TableChunks, cache

    root = cache.active_root() or cache.default_root()
    options = reading_options(settings)
    entry = cache.lookup(root, path, options)
    if entry is not None:
        LOG.info(f"'{path}': read from the table cache ({root}).")
        return entry
    d = settings.data
    LOG.info(f"'{path}': converting it once, in chunks of {CHUNK_ROWS:,} rows, into {root}.")
    with TableChunks(
        path,
        CHUNK_ROWS,
        sep=d.sep,
        decimal=d.decimal,
        na_values=d.na_values,
        encoding=d.encoding,
        text_columns=d.id,
        thousands=d.thousands,
        numeric=d.numeric,
        sheet=d.sheet,
        layer=d.layer,
    ) as chunks:
        built = cache.build_entry(
            chunks, root, options, chunks.sha256, chunks.sep, chunks.id_column
        )
    if built is None:
        raise DataError(
            f"'{path}' cannot be trained out of core: a column mixes numbers and text or holds "
            "values float32 cannot keep (run with --out-of-core off, or fix the column)."
        )
    cache.remember(root, path, built.sha256)
    return built


class Rows:
    """Blocks of a cache entry's rows as frames, read with plain reads (nothing stays mapped):
    numeric columns as float32, text columns as object arrays of their levels."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.n_rows = entry.n_rows
        self.slots = {name: i for i, name in enumerate(entry.numeric_columns)}
        self.numeric = _matrix_file(entry.numeric) if entry.numeric_columns else None
        self._codes = {
            name: _vector_file(entry.codes(name))
            for name in entry.columns
            if entry.kind(name) == "text"
        }
        self._levels: dict[str, np.ndarray] = {}
        for name in self._codes:
            found = entry.levels(name)  # a list built from the entry's array: once
            levels = np.empty(len(found) + 1, dtype=object)
            levels[:-1] = found
            levels[-1] = np.nan  # code -1: missing
            self._levels[name] = levels

    def frame(self, start: int, stop: int, columns: Sequence[str]) -> pd.DataFrame:
        import pandas as pd

        stop = min(stop, self.n_rows)
        parts: dict[str, Any] = {}
        wanted_numeric = [c for c in columns if c in self.slots]
        if wanted_numeric and self.numeric is not None:
            slots = [self.slots[name] for name in wanted_numeric]
            values = np.empty((stop - start, len(slots)), np.float32)
            # Block by block: a few columns of every row must not read every column at once.
            for a in range(start, stop, CHUNK_ROWS):
                b = min(a + CHUNK_ROWS, stop)
                values[a - start : b - start] = self.numeric.read(a, b)[:, slots]
            for j, name in enumerate(wanted_numeric):
                parts[name] = values[:, j]
        for name in columns:
            if name in self._codes:
                codes = self._codes[name].read(start, stop)[:, 0]
                parts[name] = self._levels[name].take(codes)
        return pd.DataFrame({c: parts[c] for c in columns}, index=pd.RangeIndex(start, stop))

    def blocks(self, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        for start in range(0, self.n_rows, CHUNK_ROWS):
            yield self.frame(start, start + CHUNK_ROWS, columns)


def _matrix_file(array: np.ndarray) -> RowFile:
    if not isinstance(array, np.memmap):
        raise ValueError("expected a memory map of a cache file")
    return RowFile.of_memmap(array)


def _vector_file(array: np.memmap | np.ndarray) -> RowFile:
    if not isinstance(array, np.memmap) or array.filename is None:
        raise ValueError("expected a memory map of a cache file")
    return RowFile(str(array.filename), len(array), 1, array.dtype, array.offset)


# --------------------------------------------------------------------------- preparing
#: Options whose work needs the whole table in memory, refused with --out-of-core on.
_IN_MEMORY_ONLY: dict[str, Callable[[Settings], object]] = {
    "--labels": lambda s: s.data.labels,
    "--valid-file": lambda s: s.data.valid_file,
    "--transpose": lambda s: s.data.transpose or None,
    "--top-variance": lambda s: s.preprocess.top_variance,
    "--group-pattern": lambda s: s.data.group_pattern,
    "--preset realmlp_td": lambda s: s.model.preset == "realmlp_td" or None,
    "--calibrate": lambda s: s.train.calibrate or None,
    "--threshold auto": lambda s: s.train.threshold == "auto" or None,
}

#: A row's role in one preparation (`Scan.roles`): -1 has no target.
TRAIN, VALID, TEST = 0, 1, 2
_SIDES = {TRAIN: "train", VALID: "valid", TEST: "test"}


@dataclass
class Scan:
    """A cached table before any split: its columns chosen, the task decided (from the target
    columns read block by block), and which rows have every target."""

    path: str
    entry: Entry
    rows: Rows
    selection: Any  # data.ColumnSelection
    task: Any  # data.TaskInfo
    present: np.ndarray
    n_dropped: int
    ids: tuple[str, ...]
    #: The column whose value a row's hash is drawn from (--group, else the ID); None: row number.
    key_column: str | None

    @property
    def n_present(self) -> int:
        return int(self.present.sum())

    def roles(self, rule: Callable[[Any], np.ndarray]) -> np.ndarray:
        """Each row's role (int8: TRAIN, VALID, TEST) from `rule(keys of a block)`, -1 where a
        target is missing; the keys are read block by block."""
        out = np.full(self.entry.n_rows, -1, np.int8)
        for start in range(0, self.entry.n_rows, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, self.entry.n_rows)
            keys = (
                self.rows.frame(start, stop, [self.key_column])[self.key_column].astype(str)
                if self.key_column is not None
                else np.arange(start, stop)
            )
            out[start:stop] = np.where(self.present[start:stop], rule(keys), -1)
        return out

    def describe_hash(self) -> str:
        column = self.key_column
        return f"by a hash of '{column}'" if column else "by a hash of the row number"


def scan_table(path: str, settings: Settings) -> Scan:
    """Convert (once) and scan a table: the options it refuses, its columns on the first
    `HEAD_ROWS` rows, the task on the whole target column, streamed (its distinct values)."""
    from mlpcli import data, prepare

    d = settings.data
    for option, value in _IN_MEMORY_ONLY.items():
        if value(settings):
            raise UsageError(
                f"{option} needs the table in memory; leave it out or pass --out-of-core off."
            )
    if not d.target:
        raise UsageError("Name the target column with --target COL.")
    entry = cached_table(path, settings)
    rows = Rows(entry)
    head = rows.frame(0, HEAD_ROWS, entry.columns)
    drop = list(d.drop)
    if d.group is not None:
        if d.group not in entry.columns:
            raise DataError(f"{path}: --group column '{d.group}' does not exist.")
        if d.group not in d.target and d.group not in d.id:
            drop.append(d.group)
    ids = d.id or (
        (entry.id_column,) if entry.id_column and entry.id_column not in d.target else ()
    )
    features_file = prepare.features_file(d.features_file, data.Table(head, path, ""), d.strict)
    selection = data.select_columns(
        head, d.target, ids, [*d.features, *features_file] or None, drop, d.categorical,
        source=path, numeric=d.numeric, strict=d.strict,
    )  # fmt: skip
    del head
    targets = list(selection.targets)
    present, distinct = _target_values(rows, targets)
    n_present = int(present.sum())
    n_dropped = entry.n_rows - n_present
    if not n_present:
        raise DataError(f"No row in '{path}' has all targets ({', '.join(targets)}) present.")
    if n_dropped:
        LOG.warning(f"{path}: dropped {n_dropped} row(s) whose target is missing.")
    task = data.detect_task(distinct, targets, d.task, source=path, n_rows=n_present)
    task = prepare.choose_positive(task, d.positive_class)
    LOG.info(
        f"Task: {task.task}, {'detected' if d.task == 'auto' else 'set with --task'}. "
        f"Why: {task.reason}."
    )
    prepare.check_class_count(task, n_present, path, d.strict)
    key_column = d.group or (ids[0] if ids else None)
    return Scan(path, entry, rows, selection, task, present, n_dropped, tuple(ids), key_column)


def _target_values(rows: Rows, targets: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Which rows have every target, and each target's distinct values on them (NaN-padded
    columns), block by block: factorizing 11M labels at once was the preparation's peak."""
    import pandas as pd

    present = np.empty(rows.n_rows, dtype=bool)
    seen: dict[str, list[pd.Series]] = {name: [] for name in targets}
    for frame in rows.blocks(targets):
        ok = frame.notna().all(axis=1).to_numpy()
        present[frame.index.start : frame.index.stop] = ok
        for name in targets:
            seen[name].append(frame[name][ok].drop_duplicates())
    distinct = {
        name: pd.concat(parts).drop_duplicates().reset_index(drop=True)
        for name, parts in seen.items()
    }
    return present, pd.concat(distinct, axis=1)


@dataclass
class Encoded:
    """The rows of each role encoded on disk (`RowFile`s in a temporary folder, removed with
    the last of them), their targets in memory, and the fitted preprocessing."""

    preprocessor: Any  # Preprocessor
    encoder: TargetEncoder
    X: dict[int, RowFile]
    Y: dict[int, np.ndarray | None]
    y_index: dict[int, np.ndarray | None]


def encode(scan: Scan, settings: Settings, roles: np.ndarray, sides: Sequence[int]) -> Encoded:
    """Fit the preprocessing and the target encoder on the TRAIN rows in one streaming pass,
    then encode the rows of each of `sides` into its own float32 row file in a second."""
    from mlpcli import prepare
    from mlpcli.preprocessing import Preprocessor
    from mlpcli.streaming import TableSummary
    from mlpcli.target_encoding import TargetEncoder

    p = settings.preprocess
    features, targets = list(scan.selection.features), list(scan.selection.targets)
    summary = TableSummary(features, scan.selection.categorical, p.log1p)
    target_rows = _EncoderRows(scan.task.task)
    for frame in scan.rows.blocks([*features, *targets]):
        train = roles[frame.index.start : frame.index.stop] == TRAIN
        part = frame[train]
        summary.update(part)
        target_rows.add(part[targets])
    pre = Preprocessor(
        impute=p.impute, fill_value=p.fill_value, missing_indicators=p.missing_indicators,
        scale=p.scale, log1p=p.log1p, max_levels=p.max_levels,
        min_level_count=p.min_level_count, strict=settings.data.strict,
    ).fit_summary(summary)  # fmt: skip
    encoder = TargetEncoder().fit(target_rows.frame(), targets, scan.task.task, scan.task.labels)
    del target_rows

    dtype = np.dtype(settings.model.dtype)
    work = scan.entry.folder.parent.parent / "training"
    work.mkdir(parents=True, exist_ok=True)
    folder = tempfile.TemporaryDirectory(prefix="rows-", dir=work)
    writers = {
        side: RowFileWriter(Path(folder.name) / f"{_SIDES[side]}.X", pre.n_features_out, dtype)
        for side in sides
    }
    sizes = {side: int((roles == side).sum()) for side in sides}
    outputs = {side: Filled(n) for side, n in sizes.items()}
    indices = {side: Filled(n) for side, n in sizes.items()}
    for frame in scan.rows.blocks([*features, *targets]):
        block = roles[frame.index.start : frame.index.stop]
        for side in sides:
            mask = block == side
            if not mask.any():
                continue
            part = frame[mask]
            writers[side].append(pre.transform(part, dtype))
            y_index, Y = prepare.encode_targets(encoder, part, dtype)
            outputs[side].add(Y)
            if y_index is not None:
                indices[side].add(y_index.astype(np.int32))
    X = {side: writer.finish() for side, writer in writers.items()}
    for rowfile in X.values():
        rowfile.owner = folder
    return Encoded(
        pre,
        encoder,
        X,
        {side: filled.array() for side, filled in outputs.items()},
        {side: filled.array() for side, filled in indices.items()},
    )


class _EncoderRows:
    """The training targets the encoder is fitted on, gathered block by block: for
    classification their distinct rows (the labels are a set: the same fit; factorizing 11M
    labels at once took ~140 MiB of hash table); regression's mean and spread need every row."""

    def __init__(self, task: str) -> None:
        from mlpcli import task as tasks

        self.distinct = tasks.get(task).classification
        self.parts: list[pd.DataFrame] = []

    def add(self, frame: pd.DataFrame) -> None:
        self.parts.append(frame.drop_duplicates() if self.distinct else frame)

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        joined = pd.concat(self.parts)
        return joined.drop_duplicates() if self.distinct else joined


def prepare_data(path: str, settings: Settings, rng: np.random.Generator) -> PreparedData:
    """`prepare.prepare_data` for a table on disk: the same selection, task, preprocessing and
    target encoding, fitted in streaming passes; X and X_val are `RowFile`s."""
    d = settings.data
    scan = scan_table(path, settings)

    def split(keys: Any) -> np.ndarray:
        if d.valid_fraction <= 0:
            return np.full(len(keys), TRAIN, np.int8)
        return row_hash_valid(keys, d.valid_fraction, settings.train.seed).astype(np.int8)

    roles = scan.roles(split)
    if not (roles == TRAIN).any():
        raise DataError(f"'{path}': no training rows are left after the validation split.")
    LOG.info(
        f"Validation rows: {int((roles == VALID).sum()):,} of {scan.n_present:,}, chosen "
        f"{scan.describe_hash()} (not stratified)."
    )
    prepared = prepared_data(scan, settings, roles, encode(scan, settings, roles, (TRAIN, VALID)))
    return_free_heap()  # the passes' blocks are gone: training must not carry their pages
    return prepared


def prepared_data(
    scan: Scan, settings: Settings, roles: np.ndarray, encoded: Encoded
) -> PreparedData:
    """The `PreparedData` of the TRAIN and VALID rows of an encoding."""
    from mlpcli import prepare

    X, X_val = encoded.X[TRAIN], encoded.X[VALID]
    Y_train, y_train = encoded.Y[TRAIN], encoded.y_index[TRAIN]
    if Y_train is None:
        raise DataError(f"'{scan.path}': no training rows.")
    dtype = np.dtype(settings.model.dtype)
    weight = None
    if settings.train.class_weight is not None and y_train is not None:
        weight = encoded.encoder.class_weights(y_train, settings.train.class_weight).astype(dtype)
    split = _split_frame(scan.rows, scan.ids, roles == TRAIN, roles == VALID)
    return prepare.PreparedData(
        X=X,  # type: ignore[arg-type]
        Y=Y_train,
        y_index=y_train,
        X_val=X_val if len(X_val) else None,  # type: ignore[arg-type]
        Y_val=encoded.Y[VALID],
        y_index_val=encoded.y_index[VALID],
        sample_weight=weight,
        preprocessor=encoded.preprocessor,
        target_encoder=encoded.encoder,
        task=scan.task,
        selection=scan.selection,
        inputs={scan.path: scan.entry.sha256},
        n_rows=scan.n_present,
        n_dropped_targets=scan.n_dropped,
        split=split,
    )


class Filled:
    """Rows of an array of a known length (or at most that many) filled block by block: no
    list of blocks joined at the end (that held the targets twice: 176 MiB for 11M rows)."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows, self.filled = n_rows, 0
        self._array: np.ndarray | None = None

    def add(self, block: np.ndarray) -> None:
        if self._array is None:
            self._array = np.empty((self.n_rows, *block.shape[1:]), block.dtype)
        self._array[self.filled : self.filled + len(block)] = block
        self.filled += len(block)

    def array(self) -> np.ndarray | None:
        return None if self._array is None else self._array[: self.filled]


def return_free_heap() -> None:
    """Give the heap's free pages back to the system. glibc keeps the blocks the passes freed
    for reuse (on 11M rows: ~250 MiB after the encoding pass, charged against a memory limit
    for the rest of the run); elsewhere (no `malloc_trim`) nothing happens."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _split_frame(
    rows: Rows, ids: Sequence[str], train: np.ndarray, valid: np.ndarray
) -> pd.DataFrame:
    """Each sample's ID (or 1-based row number) and its set, for rows with a target; the set
    is categorical (a few bytes a row)."""
    import pandas as pd

    keep = train | valid
    role = pd.Categorical.from_codes(valid[keep].astype(np.int8), ["train", "valid"])
    if ids:
        out = rows.frame(0, rows.n_rows, list(ids))[keep].reset_index(drop=True)
    else:  # int32 row numbers, no int64 temporaries: 11M rows cost 44 MB, not 180
        numbers = np.arange(1, rows.n_rows + 1, dtype=np.int32)
        out = pd.DataFrame({"row": numbers if keep.all() else numbers[keep]}, copy=False)
    out["set"] = role
    return out


def on_disk(X: Any) -> bool:
    """Whether encoded rows are a `RowFile` on disk (out of core) rather than an array."""
    return isinstance(X, RowFile)


def forward(net: Any, X: Any, block_rows: int = CHUNK_ROWS) -> np.ndarray:
    """The network's outputs for an array, or for a `RowFile` read block by block (the
    outputs are kept: rows x outputs, never the features)."""
    if not on_disk(X):
        return np.asarray(net.forward(X))
    out: np.ndarray | None = None
    for start in range(0, len(X), block_rows):
        stop = min(start + block_rows, len(X))
        P = net.forward(X.read(start, stop))
        if out is None:
            out = np.empty((len(X), *P.shape[1:]), P.dtype)
        out[start:stop] = P
    if out is None:
        raise DataError("No rows to score.")
    return out


def streamed_report(
    encoder: TargetEncoder,
    net: Any,
    X: RowFile,
    y_index: np.ndarray | None,
    Y: np.ndarray,
    threshold: float,
    block_rows: int = CHUNK_ROWS,
) -> dict[str, Any]:
    """The network's metrics on every row on disk, read and scored block by block
    (`Task.report_stream`: counts and scores are kept, never the features)."""
    from mlpcli import task as tasks

    return_free_heap()  # what training freed, before the scores are kept
    spec = tasks.get(encoder.task)
    stream = spec.report_stream(encoder, threshold, len(X))
    for start in range(0, len(X), block_rows):
        stop = min(start + block_rows, len(X))
        rows = slice(start, stop)
        truth = spec.truth(encoder, None if y_index is None else y_index[rows], Y[rows])
        stream.add(truth, net.forward(X.read(start, stop)))
    return stream.report()
