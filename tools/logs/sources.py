"""Which log backend the settings configure."""

from __future__ import annotations

from typing import Any

from tools.log_types import LogSource
from tools.logs.elasticsearch import ElasticsearchSource
from tools.logs.files import FileLogSource


def log_source_from_settings(settings: Any) -> LogSource:
    """Elasticsearch when `ELASTICSEARCH_URL` is set, else the file source over `LOG_FILES`."""
    if getattr(settings, "ELASTICSEARCH_URL", None):
        return ElasticsearchSource.from_settings(settings)

    return FileLogSource.from_settings(settings)

