"""Memory's own failures: which dependency (Milvus or the embeddings endpoint) an error belongs to.

A finished incident that cannot be stored is kept in `PENDING_FILE` (store/pending.py holds the file)
and stored when memory is back.
"""

from __future__ import annotations

from core.resilience import DependencyUnavailable
from memory.embeddings import EmbeddingError

PENDING_FILE = "memory-pending.jsonl"


class MemoryUnavailable(DependencyUnavailable):
    """Memory (Milvus or the embeddings endpoint) could not be used; what was being stored is kept."""


def dependency_of(exc: BaseException) -> str:
    """Which dependency an error from memory belongs to ("embeddings" or "milvus")."""

    if isinstance(exc, DependencyUnavailable):
        return exc.dependency
    return "embeddings" if isinstance(exc, EmbeddingError) else "milvus"


def reason(exc: BaseException) -> str:
    """One line for a human: which dependency, and what it said."""
    message = getattr(exc, "message", None)  # pymilvus.MilvusException: str() wraps it in <...(code=...)>
    text = message if isinstance(message, str) and message else str(exc)
    text = text.splitlines()[0][:200] if text else type(exc).__name__
    return f"{dependency_of(exc)}: {text}"
