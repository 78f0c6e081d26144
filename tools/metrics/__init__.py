"""Metrics toolset: the `MetricsSource` protocol's backends, read tools for the model, its notes.

The protocol itself (`Series`, `MetricsSource`, `MetricsQueryError`) is `tools/metric_types.py`, one of
the tools' shared modules: the analysis (`tools.analysis`) reads series through it, and this folder
imports the analysis (one way).

- `selector.py`   the PromQL selector subset non-Prometheus backends answer
- `prometheus.py` `PrometheusSource`: a real Prometheus HTTP API
- `recorded.py`   `RecordedMetricsSource`: recorded per-pod CSVs (Nezha layout)
- `inmemory.py`   `InMemoryMetricsSource`: series held in memory (replays, PVE RRD reads)
- `tools.py`      read-only LangChain tools for the LLM, each returning a `ToolResult`
- `notes.md`      what the model is told about these tools

Deliberately light: importing a submodule runs this file.
"""

from __future__ import annotations

from pathlib import Path

NOTES = Path(__file__).with_name("notes.md").read_text(encoding="utf-8")

__all__ = ["NOTES"]
