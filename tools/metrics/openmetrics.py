"""Series as OpenMetrics text, so a recorded incident can be backfilled into a real Prometheus (promtool)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from core.models import utc
from tools.metric_types import Series


def _om_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def to_openmetrics(series: Iterable[Series]) -> str:
    """Series as an OpenMetrics text exposition with timestamps, every metric typed as a gauge.

    This is what `promtool tsdb create-blocks-from openmetrics` backfills, so a recorded incident can
    be loaded into a real Prometheus. Each family's samples are contiguous, each series in time
    order; values are written with full float precision (round-trips exactly).
    """
    by_metric: dict[str, list[Series]] = {}
    for s in series:
        by_metric.setdefault(s.metric, []).append(s)
    lines: list[str] = []
    for metric in sorted(by_metric):
        lines.append(f"# TYPE {metric} gauge")
        for s in sorted(by_metric[metric], key=lambda x: sorted(x.labels.items())):
            labels = ",".join(f'{k}="{_om_label_value(v)}"' for k, v in sorted(s.labels.items()))
            head = f"{metric}{{{labels}}}" if labels else metric
            for t, v in sorted(s.points, key=lambda p: p[0]):
                if math.isfinite(v):
                    lines.append(f"{head} {v!r} {utc(t).timestamp():.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
