"""Errors the stores raise when a file or database cannot be used at all.

A corrupted SQLite file is not a bug to show as a traceback: the operator needs the file's name
and what to do about it, in one line. Interfaces map `StoreError` to that line (CLI exit 2).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.resilience import DependencyUnavailable


class StoreError(RuntimeError):
    """A store (incident registry, checkpoints) is unreadable: names the file and the remedy."""


def is_corruption(exc: BaseException) -> bool:
    """sqlite3 raises plain DatabaseError for a damaged file (its subclasses are ordinary failures)."""
    if type(exc) is sqlite3.DatabaseError:
        return True
    return isinstance(exc, sqlite3.OperationalError) and "unable to open database file" in str(exc)


def corrupted(path: Path, what: str, exc: BaseException) -> StoreError:
    return StoreError(f"{path} ({what}) is not a usable SQLite database ({exc}): move it aside to start "
                      "with an empty one, or restore it from a backup")


@contextmanager
def named_if_corrupted(path: Path, what: str) -> Iterator[None]:
    """Turn a damaged SQLite file into the one-line `StoreError` naming it; other errors pass through."""
    try:
        yield
    except sqlite3.Error as exc:
        if is_corruption(exc):
            raise corrupted(path, what, exc) from None
        raise


class StoreUnavailable(DependencyUnavailable):
    """The database server (Postgres) cannot be reached now; nothing was written. Callers answer 503
    or wait and try again: the data is where it was (the queue, Alertmanager's re-send)."""

    def __init__(self, message: str, dependency: str = "postgres") -> None:
        super().__init__(dependency, message)

