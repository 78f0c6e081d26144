"""Incidents waiting to be remembered: the outbox of the learning loop.

When Milvus or the embeddings endpoint is down, a finished incident cannot be stored. Dropping it
would lose what was learned, so `IncidentMemory.remember` appends it here (one JSON line per record,
fsynced, under an exclusive file lock so several workers sharing `$AIOPS_DATA_DIR` do not interleave
lines) and the next successful `remember` replays the whole file (upsert by id: replaying twice keeps
one row).

A line that no longer parses as an `IncidentRecord` (hand-edited, written by a future version) is moved
to `<file>.rejected` with one WARNING instead of blocking the rest forever.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

R = TypeVar("R", bound=BaseModel)

log = logging.getLogger(__name__)

class PendingRecords(Generic[R]):
    """A JSONL file of records waiting for a store that is down: `IncidentRecord`s for memory, and
    the notifications the outbox could not queue while Redis was down (`interfaces/notify/outbox.py`)."""

    def __init__(self, path: Path, parse: Callable[[Any], R]) -> None:
        self.path = path
        self.parse = parse  # a JSON object back to a record (the model's `model_validate`)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def add(self, record: R) -> int:
        """Append one record durably; returns how many are pending now."""
        line = (record.model_dump_json() + "\n").encode("utf-8")
        with self._locked() as fd:
            os.write(fd, line)
            os.fsync(fd)
            return _count_lines(self.path)

    def peek(self) -> list[R]:
        """Every readable pending record, leaving the file as it is."""
        if not self.path.exists():
            return []
        with self._locked():
            return self._read()[0]

    def update(self, change: Callable[[list[R]], list[R]]) -> int:
        """Rewrite the file as `change(current records)`, under the lock, fsynced; returns the new count."""
        with self._locked() as fd:
            records = change(self._read()[0])
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            if records:
                os.write(fd, "".join(r.model_dump_json() + "\n" for r in records).encode("utf-8"))
            os.fsync(fd)
            return len(records)

    def _read(self) -> tuple[list[R], list[str]]:
        records: list[R] = []
        rejected: list[str] = []
        for line in self.path.read_bytes().decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                records.append(self.parse(json.loads(line)))
            except (ValueError, ValidationError):
                rejected.append(line)
        return records, rejected

    def count(self) -> int:
        return _count_lines(self.path) if self.path.exists() else 0

    def replay(self, store: Callable[[list[R]], object]) -> int:
        """Store every pending record with `store` (an upsert by id); on success the file is emptied.
        If `store` raises, nothing is removed and the error propagates. Returns how many were stored."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0
        with self._locked() as fd:
            records, rejected = self._read()
            if records:
                store(records)
            if rejected:
                with self.path.with_suffix(self.path.suffix + ".rejected").open("a", encoding="utf-8") as bad:
                    bad.write("\n".join(rejected) + "\n")
                log.warning("memory: %d unreadable pending incident line(s) moved to %s.rejected",
                            len(rejected), self.path)
            os.ftruncate(fd, 0)
            os.fsync(fd)
        if records:
            log.info("memory: stored %d incident(s) that were pending in %s", len(records), self.path)
        return len(records)


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def count_lines(path: Path) -> int:
    """How many records a pending file holds (0 when it does not exist or cannot be read)."""
    try:
        return _count_lines(path)
    except OSError:
        return 0
