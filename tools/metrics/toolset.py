"""The metrics toolset: a Prometheus (or a recording), read by the anomaly ranking and by the model.

Its settings are the core ones every layer shares (`PROMETHEUS_URL`, `PROMETHEUS_TIMEOUT`: the health
check and the anomaly watcher read them too). Its evidence is gathered by the diagnosis' ranking
(`tools/analysis/metric_anomaly.py` over the whole source), not per object, so `investigate` reads
nothing more; its verification re-runs the evidence queries (agents/verification.py), since a metric
check must know the diagnosis' windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools.metric_types import MetricsSource
from tools.metrics.prometheus import PrometheusSource
from tools.toolset import Toolset


class MetricsSettings(BaseModel):
    PROMETHEUS_URL: str | None = None
    PROMETHEUS_TIMEOUT: float = 10.0


class MetricsToolset(Toolset):
    name = "metrics"
    folder = Path(__file__).parent
    settings_model = MetricsSettings
    shared_source = True

    def connect(self, settings: Any) -> MetricsSource | None:
        if not self.settings(settings).PROMETHEUS_URL:
            return None

        return PrometheusSource.from_settings(settings)

    def read_tools(self, client: MetricsSource, *, now: Any = None, call_graph: Any = None) -> list[Any]:
        from tools.metrics.tools import make_metric_tools

        return make_metric_tools(client, call_graph=call_graph)


TOOLSET = MetricsToolset()
