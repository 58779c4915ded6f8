"""`mlpcli split`: cut one table into a training and a test table, in the input's own format.

Cells are copied as they are (text tables are read as text, so no number is re-rounded), the
rows keep their order, and a listing says which row went where. The split itself is
`splitting.train_valid_split`: grouped (`--group`) and/or stratified on the target
(`--stratify --target COL`), seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpcli import splitting
from mlpcli.data import formats
from mlpcli.errors import DataError, UsageError
from mlpcli.outputs import atomic_path

#: Binary formats `split` writes back, by reader name: frame, path -> None.
_WRITERS: dict[str, Callable[[pd.DataFrame, Path], Any]] = {
    "Parquet": lambda frame, path: frame.to_parquet(path, index=False),
    "Feather/Arrow": lambda frame, path: frame.to_feather(path),
    "Excel": lambda frame, path: frame.to_excel(path, index=False, engine="openpyxl"),
}


@dataclass(frozen=True)
class SplitResult:
    """Where the rows went: the two tables and the listing, with their row counts."""

    train: str
    test: str
    listing: str
    n_train: int
    n_test: int


def _read(path: str, sep: str | None) -> tuple[pd.DataFrame, str, formats.FormatReader | None]:
    """The table with every text cell as written; the separator (text) or the reader (binary)."""
    from mlpcli import data

    reader = formats.reader_for(path)
    if reader is not None:
        if reader.name not in _WRITERS:
            raise UsageError(
                f"split cannot write {reader.name} files ('{path}'); export the table as CSV "
                "or Parquet first."
            )
        return reader.read(path, formats.ReadOptions()).frame, "", reader
    probe = data.read_table(path, sep=sep, checksum=False)  # sniffing, checks, errors
    frame = pd.read_csv(
        path,
        sep=probe.sep,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        engine="python" if probe.sep == r"\s+" else "c",
    )
    return frame, probe.sep, None


def _outputs(path: str, out_dir: str) -> tuple[Path, Path, Path]:
    """`cohort.csv.gz` -> out_dir/cohort.train.csv.gz, cohort.test.csv.gz, cohort.split.csv."""
    name = Path(path).name
    stem, dot, suffixes = name.partition(".")
    folder = Path(out_dir)
    suffix = f".{suffixes}" if dot else ".csv"
    return (
        folder / f"{stem}.train{suffix}",
        folder / f"{stem}.test{suffix}",
        folder / f"{stem}.split.csv",
    )


def split_table(
    path: str,
    test_fraction: float,
    out_dir: str = ".",
    *,
    group: str | None = None,
    stratify: str | None = None,
    seed: int = 0,
    sep: str | None = None,
) -> SplitResult:
    """Write `<stem>.train<ext>`, `<stem>.test<ext>` and `<stem>.split.csv` into `out_dir`."""
    if path == "-":
        raise UsageError("split needs a file, not stdin: it writes files named after DATA.")
    frame, used_sep, reader = _read(path, sep)
    for option, column in (("--group", group), ("--target", stratify)):
        if column is not None and column not in frame.columns:
            raise DataError(f"{option} column '{column}' not found in '{path}'.")
    y = None if stratify is None else pd.factorize(frame[stratify].astype(str))[0]
    groups = None if group is None else frame[group].astype(str).to_numpy(dtype=object)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = splitting.train_valid_split(
        len(frame), test_fraction, rng, y=y, groups=groups
    )
    train_path, test_path, listing_path = _outputs(path, out_dir)
    role = np.full(len(frame), "train", dtype=object)
    role[test_idx] = "test"
    listing = pd.DataFrame({"row": np.arange(1, len(frame) + 1), "set": role})
    if group is not None:
        listing.insert(1, group, frame[group].to_numpy())
    for part, target in ((frame.iloc[train_idx], train_path), (frame.iloc[test_idx], test_path)):
        with atomic_path(target, "--out-dir") as tmp:
            if reader is not None:
                _WRITERS[reader.name](part.reset_index(drop=True), tmp)
            else:
                part.to_csv(
                    tmp,
                    sep=" " if used_sep == r"\s+" else used_sep,
                    index=False,
                    compression=_compression(target),
                )
    with atomic_path(listing_path, "--out-dir") as tmp:
        listing.to_csv(tmp, index=False)
    return SplitResult(
        str(train_path), str(test_path), str(listing_path), len(train_idx), len(test_idx)
    )


def _compression(target: Path) -> Any:
    """Compression from the final name (the temporary file has none of its suffixes)."""
    suffix = target.suffix.lower()
    return {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}.get(suffix)
