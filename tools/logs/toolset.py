"""The logs toolset: Elasticsearch or log files (or a recording), read by the log-template analysis
and by the model.

Its settings are the core ones every layer shares (`ELASTICSEARCH_*`, `LOG_FILES`: the health check
and the anomaly watcher read them too). Its evidence is gathered by the diagnosis' template mining
over the whole source, so `investigate` reads nothing more; verification re-counts the evidence's
templates (agents/verification.py), since it must know the diagnosis' windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools.log_types import LogSource
from tools.logs.sources import log_source_from_settings
from tools.toolset import Toolset


class LogsSettings(BaseModel):
    ELASTICSEARCH_URL: str | None = None
    LOG_FILES: str | None = None


class LogsToolset(Toolset):
    name = "logs"
    folder = Path(__file__).parent
    settings_model = LogsSettings
    shared_source = True

    def connect(self, settings: Any) -> LogSource | None:
        s = self.settings(settings)
        if not (s.ELASTICSEARCH_URL or s.LOG_FILES):
            return None

        return log_source_from_settings(settings)

    def read_tools(self, client: LogSource, *, now: Any = None, call_graph: Any = None) -> list[Any]:
        from tools.logs.tools import make_log_tools

        return make_log_tools(client, now=now)


TOOLSET = LogsToolset()
