"""Metrics toolset: the `MetricsSource` protocol, its backends, read tools for the model, its notes.

- `types.py`      `Series`, the `MetricsSource` protocol, `MetricsQueryError` (imports nothing of ours)
- `selector.py`   the PromQL selector subset non-Prometheus backends answer
- `prometheus.py` `PrometheusSource`: a real Prometheus HTTP API
- `recorded.py`   `RecordedMetricsSource`: recorded per-pod CSVs (Nezha layout)
- `inmemory.py`   `InMemoryMetricsSource`: series held in memory (replays, PVE RRD reads)
- `tools.py`      read-only LangChain tools for the LLM, each returning a `ToolResult`
- `notes.md`      what the model is told about these tools

Deliberately light: importing a submodule runs this file, and `tools.analysis.metric_anomaly`
imports `tools.metrics.types` while `tools.metrics.tools` imports the analysis.
"""

from __future__ import annotations

from pathlib import Path

NOTES = Path(__file__).with_name("notes.md").read_text(encoding="utf-8")

__all__ = ["NOTES"]
