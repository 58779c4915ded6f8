"""Binary table formats: Parquet, Feather/Arrow, Excel workbooks and AnnData `.h5ad` files.

One small reader class per format, in a registry keyed by format name; `reader_for` picks one
from the extension (or the magic bytes of an oddly named file), and `data.read_table` hands the
frame it returns to the same column checks as a CSV's, so every command that reads a table
takes these formats. Each reader needs an optional extra; a missing one is a one-line error
naming the install command. Parquet and Feather are memory-mapped and read only the columns
asked for; Excel sheets and h5ad matrices are read in blocks of rows (`chunks`, which
`data.TableChunks` uses), and of an h5ad only the wanted genes are made dense.

pandas and the format libraries are imported inside the functions: `--help` must stay fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpcli.data.excel import ExcelReader
from mlpcli.data.format_base import OBS_NAMES as OBS_NAMES
from mlpcli.data.format_base import FormatReader as FormatReader
from mlpcli.data.format_base import FormatTable as FormatTable
from mlpcli.data.format_base import ReadOptions as ReadOptions
from mlpcli.data.format_base import tidy
from mlpcli.data.h5ad import AnnDataReader
from mlpcli.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


class _ArrowReader(FormatReader):
    """Parquet and Feather share Arrow tables: memory-mapped, only the wanted columns read."""

    extra = "parquet"
    module = "pyarrow"

    def read(self, path: str, options: ReadOptions) -> FormatTable:
        self.check_options(options, path)
        self.load(path)
        schema_names = self._names(path)
        columns = (
            None
            if options.columns is None
            else [name for name in schema_names if name in set(options.columns)]
        )
        try:
            arrow = self._table(path, columns)
        except (OSError, ValueError) as error:
            raise DataError(f"Cannot read '{path}' as {self.name}: {error}.") from None
        frame = arrow.to_pandas()
        return FormatTable(tidy(frame, options))

    def _names(self, path: str) -> list[str]:
        raise NotImplementedError

    def _table(self, path: str, columns: list[str] | None) -> Any:
        raise NotImplementedError


class ParquetReader(_ArrowReader):
    name = "Parquet"
    extensions = (".parquet", ".parq", ".pq")
    magic = b"PAR1"

    def _names(self, path: str) -> list[str]:
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except (OSError, ValueError) as error:
            raise DataError(f"Cannot read '{path}' as Parquet: {error}.") from None

    def _table(self, path: str, columns: list[str] | None) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=columns, memory_map=True)

    def chunks(self, path: str, options: ReadOptions, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """Batches of `chunk_rows` rows read row group by row group (`iter_batches`), only the
        wanted columns, never the whole table: how a large file goes into the table cache."""
        import pandas as pd
        import pyarrow.parquet as pq

        self.check_options(options, path)
        self.load(path)
        wanted = None if options.columns is None else set(options.columns)
        try:
            handle = pq.ParquetFile(path)
        except (OSError, ValueError) as error:
            raise DataError(f"Cannot read '{path}' as Parquet: {error}.") from None
        with handle:
            names = list(handle.schema_arrow.names)
            columns = None if wanted is None else [name for name in names if name in wanted]
            start = 0
            for batch in handle.iter_batches(batch_size=chunk_rows, columns=columns):
                frame = tidy(batch.to_pandas(), options)
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                yield frame

    def shape(self, path: str) -> tuple[int, int] | None:
        """(rows, columns) from the file's footer, or None when it cannot be read."""
        try:
            import pyarrow.parquet as pq

            metadata = pq.read_metadata(path)
        except (ImportError, OSError, ValueError):
            return None
        return int(metadata.num_rows), int(metadata.num_columns)


class FeatherReader(_ArrowReader):
    name = "Feather/Arrow"
    extensions = (".feather", ".arrow", ".ipc")
    magic = b"ARROW1"

    def _names(self, path: str) -> list[str]:
        import pyarrow.ipc as ipc

        try:
            with ipc.open_file(path) as reader:
                return list(reader.schema.names)
        except (OSError, ValueError) as error:
            raise DataError(f"Cannot read '{path}' as Feather/Arrow: {error}.") from None

    def _table(self, path: str, columns: list[str] | None) -> Any:
        import pyarrow.feather as feather

        return feather.read_table(path, columns=columns, memory_map=True)


#: Format name -> reader; `reader_for` finds one by extension, then magic bytes.
READERS: dict[str, FormatReader] = {
    "parquet": ParquetReader(),
    "feather": FeatherReader(),
    "excel": ExcelReader(),
    "h5ad": AnnDataReader(),
}


def reader_for(path: str | Path) -> FormatReader | None:
    """The binary format of `path` from its extension, else its first bytes (a Parquet file
    named `.dat`); None for text tables (and for stdin)."""
    name = str(path)
    if name == "-":
        return None
    suffix = Path(name).suffix.lower()
    for reader in READERS.values():
        if suffix in reader.extensions:
            return reader
    if not Path(name).is_file():
        return None  # FIFOs and devices are read once, as text; missing files reported there
    try:
        with open(name, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None  # the text reader reports an unreadable file
    for reader in READERS.values():
        if reader.magic != b"PK\x03\x04" and head.startswith(reader.magic):
            return reader
    return None
