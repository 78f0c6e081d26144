"""Builds the anomaly watcher from settings, for `aiops watch` and (with WATCH_SERVICES) `aiops serve`.

The watcher itself (agents/watcher.py) takes its sources and its sink as arguments; this is where the
configured live backends and the entry point's intake (the runner, or the service's queue) meet it.
"""

from __future__ import annotations

from agents.watcher import AnomalyWatcher, Sink, open_checker
from core.settings import Settings
from service.toolbox_factory import live_logs, live_metrics


class WatchNotConfigured(ValueError):
    """No services to watch, or no backend to read them from (one line for the user)."""


def build_watcher(settings: Settings, sink: Sink, services: list[str] | None = None) -> AnomalyWatcher:
    services = services if services is not None else settings.watch_services
    if not services:
        raise WatchNotConfigured("no services to watch: set WATCH_SERVICES or pass --services a,b")
    metrics, logs = live_metrics(settings), live_logs(settings)
    if metrics is None and logs is None:
        raise WatchNotConfigured("nothing to watch: configure PROMETHEUS_URL, ELASTICSEARCH_URL or LOG_FILES")
    return AnomalyWatcher(settings, sink, services=services, metrics=metrics, logs=logs, is_open=open_checker(settings))
