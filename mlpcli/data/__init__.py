"""Tables in: reading (any format, compressed, on stdin, transposed), choosing the target, ID and
feature columns, and detecting the learning task.

Modules, each importing only those above it:

    codecs.py   compressed input and the readers that hash the bytes on disk as they pass
    formats.py  Parquet, Feather, Excel and AnnData readers (optional extras)
    read.py     sniffing, `read_table`, `TableChunks` (chunked reading for predict/evaluate)
    columns.py  `select_columns`: targets, IDs, features and their type checks
    targets.py  `detect_task` and the label helpers

Every problem a user can cause becomes a one-line `DataError`/`UsageError` naming the file,
column or option and what to do; no pandas traceback escapes. pandas is imported inside the
functions: `mlpcli --help` must not pay its import.
"""

from __future__ import annotations

from mlpcli.data.chunks import TableChunks
from mlpcli.data.codecs import CODECS
from mlpcli.data.columns import ColumnSelection, select_columns
from mlpcli.data.read import DEFAULT_NA_VALUES, Table, force_numeric, read_table
from mlpcli.data.sniff import check_reading_options
from mlpcli.data.targets import TaskInfo, as_label_strings, detect_task, drop_missing_targets

__all__ = [
    "CODECS",
    "DEFAULT_NA_VALUES",
    "ColumnSelection",
    "Table",
    "TableChunks",
    "TaskInfo",
    "as_label_strings",
    "check_reading_options",
    "detect_task",
    "drop_missing_targets",
    "force_numeric",
    "read_table",
    "select_columns",
]
