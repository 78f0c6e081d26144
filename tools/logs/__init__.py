"""Logs toolset: the `LogSource` protocol's backends, read tools for the model, its notes.

The protocol itself (`LogRecord`, `LogQuery`, `LogSource`, `LogSourceError`) is `tools/log_types.py`,
one of the tools' shared modules: the analysis (`tools.analysis`) reads records through it, and this
folder imports the analysis (one way).

- `elasticsearch.py` `ElasticsearchSource`: Elasticsearch 8, search_after over a point-in-time
- `files.py`         `FileLogSource`: plain-text and journald-export files (the embedded default)
- `inmemory.py`      `InMemoryLogSource`: records held in memory (replays)
- `sources.py`       `log_source_from_settings`: which of them the settings configure
- `tools.py`         read-only LangChain tools for the LLM, each returning a `ToolResult`
- `notes.md`         what the model is told about these tools

Deliberately light: importing a submodule runs this file.
"""

from __future__ import annotations

from pathlib import Path

NOTES = Path(__file__).with_name("notes.md").read_text(encoding="utf-8")

__all__ = ["NOTES"]
