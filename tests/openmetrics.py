"""Series as OpenMetrics text: the product's `tools.metrics.openmetrics` (kept here for the tests' imports)."""

from tools.metrics.openmetrics import to_openmetrics

__all__ = ["to_openmetrics"]
