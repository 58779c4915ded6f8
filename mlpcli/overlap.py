"""Honest metrics: does a table given to `evaluate`, `explain` or `report` hold the model's own
training rows?

At training time the model stores, per split, the SHA-256 of the table file and a sketch of the
rows' IDs: the `SKETCH_SIZE` smallest 64-bit BLAKE2b hashes of the ID values (a bottom-k
sample, so a file with a million rows stores 10,000 hashes, and for any table the IDs whose
hash falls at or below the largest stored one are checked exactly). Metrics on such a table
measure how well the model fits its training data, not how well it generalises.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Hashes of training IDs stored per split (16 hex characters each: 170 KB of metadata).
SKETCH_SIZE = 10_000
#: A table sharing more IDs than this with the training rows is reported.
MAX_SHARED_IDS = 3
#: What each stored split is called in messages.
ROLES = {"train": "training", "validation": "validation"}


def id_hash(value: str) -> int:
    """A stable 64-bit hash of one ID (the same in every Python and on every machine)."""
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big")


def row_ids(columns: Sequence[Sequence[Any]]) -> list[str]:
    """One ID string per row from one or more ID columns (joined with a unit separator)."""
    if len(columns) == 1:  # the join of one string is that string
        return list(map(str, columns[0]))
    return ["\x1f".join(str(v) for v in values) for values in zip(*columns, strict=True)]


def fingerprint(sha256: str, n_rows: int, ids: Iterable[str] | None) -> dict[str, Any]:
    """What the model stores about one split: its table's SHA-256, rows, and ID sketch."""
    record: dict[str, Any] = {"sha256": sha256, "n_rows": int(n_rows)}
    if ids is not None:
        record["ids"] = [f"{h:016x}" for h in smallest_hashes(ids)]
    return record


def smallest_hashes(ids: Iterable[str], batch: int = 65_536) -> list[int]:
    """The `SKETCH_SIZE` smallest distinct `id_hash`es, sorted, holding at most that many plus
    one batch: a set of every hash of 1M IDs was about 0.1 GB at the peak of `train`."""
    import numpy as np

    blake2b = hashlib.blake2b
    kept = np.empty(0, dtype=np.uint64)
    values = iter(ids)
    # `id_hash` of each ID as one big-endian array: 3x faster than a Python int and a set each
    while digests := [
        blake2b(i.encode("utf-8"), digest_size=8).digest() for i in itertools.islice(values, batch)
    ]:
        hashes = np.frombuffer(b"".join(digests), dtype=">u8").astype(np.uint64)
        kept = _smallest_distinct(np.concatenate([kept, hashes]))
    return [int(h) for h in kept]


def _smallest_distinct(hashes: Any) -> Any:
    """`np.unique(hashes)[:SKETCH_SIZE]`, sorting only the hashes at or below the
    SKETCH_SIZE-th smallest (a partition: 75,000 hashes 10x faster than sorting them all);
    when repeats leave fewer than SKETCH_SIZE distinct among them, the whole sort."""
    import numpy as np

    if len(hashes) <= SKETCH_SIZE:
        return np.unique(hashes)
    cut = np.partition(hashes, SKETCH_SIZE - 1)[SKETCH_SIZE - 1]
    smallest = np.unique(hashes[hashes <= cut])
    if len(smallest) < SKETCH_SIZE:  # repeated IDs: distinct hashes lie beyond the cut
        return np.unique(hashes)[:SKETCH_SIZE]
    return smallest[:SKETCH_SIZE]


@dataclass
class Overlap:
    """How a table relates to the model's training data."""

    source: str
    role: str | None = None  # "train" or "validation" when the file itself was used
    shared_ids: int = 0
    checked_ids: int = 0

    @property
    def training_data(self) -> bool:
        """True when metrics on this table would not be a test."""
        return self.role is not None or self.shared_ids > MAX_SHARED_IDS

    def warning(self, command: str) -> str | None:
        """The loud warning for `command`, or None when the table looks held out."""
        if self.role is not None:
            what = f"is the model's own {ROLES.get(self.role, self.role)} table (same SHA-256)"
        elif self.shared_ids > MAX_SHARED_IDS:
            what = (
                f"shares {self.shared_ids:,} of the {self.checked_ids:,} IDs checked with the "
                "model's training rows"
            )
        else:
            return None
        return (
            f"NOT A TEST: '{self.source}' {what}; {command} on it measures how well the model "
            "fits data it was trained on, not how well it generalises. Use held-out rows "
            "(train --split-out lists which rows trained)."
        )

    def document(self) -> dict[str, Any]:
        """For JSON outputs."""
        return {
            "training_data": self.training_data,
            "same_table_as": self.role,
            "shared_ids": self.shared_ids,
            "checked_ids": self.checked_ids,
        }


def _hash_value(text: str) -> int | None:
    """A stored hash (16 hex digits), or None for a damaged entry (which only weakens the check)."""
    try:
        return int(text, 16) if len(text) == 16 else None
    except ValueError:
        return None


class OverlapCheck:
    """Counts, chunk by chunk, a table's IDs found among the model's stored training IDs."""

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        self.metadata = metadata
        self.stored: set[int] = set()
        self.ceiling = -1  # IDs hashing above it cannot be checked exactly
        for record in (metadata.get("data") or {}).values():
            hashes = [h for h in map(_hash_value, record.get("ids", [])) if h is not None]
            self.stored.update(hashes)
            if hashes:
                top = max(hashes) if len(hashes) >= SKETCH_SIZE else (1 << 64) - 1
                self.ceiling = top if self.ceiling < 0 else min(self.ceiling, top)
        self.shared_ids = self.checked_ids = 0

    def add(self, ids: Iterable[str]) -> None:
        for value in ids:
            h = id_hash(value)
            if h <= self.ceiling:
                self.checked_ids += 1
                self.shared_ids += h in self.stored

    def result(self, source: str, sha256: str) -> Overlap:
        """The overlap of the table `source` whose bytes hash to `sha256` ("" if unknown).
        Models from before this check store only their inputs' SHA-256 (`provenance`)."""
        overlap = Overlap(source, None, self.shared_ids, self.checked_ids)
        splits: Mapping[str, Any] = self.metadata.get("data") or {}
        for role, record in splits.items():
            if sha256 and record.get("sha256") == sha256:
                overlap.role = role
                return overlap
        inputs = self.metadata.get("provenance", {}).get("inputs", [])
        if sha256 and any(item.get("sha256") == sha256 for item in inputs):
            overlap.role = "train"
        return overlap


def check(
    metadata: Mapping[str, Any], source: str, sha256: str, ids: Iterable[str] | None = None
) -> Overlap:
    """`OverlapCheck` of a whole table at once."""
    checker = OverlapCheck(metadata)
    if ids is not None:
        checker.add(ids)
    return checker.result(source, sha256)
