"""`MetricsSource` over a real Prometheus HTTP API (prometheus-api-client, wrapped for asyncio)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

from tools.metrics.selector import escape_label_value
from tools.metrics.types import MetricsQueryError, Series, utc


def choose_step(start: datetime, end: datetime, *, scrape_interval: float = 15.0,
                target_points: int = 500, max_points: int = 1000) -> float:
    """A range-query step giving about `target_points` points, never finer than the scrape interval.

    Why: a step below the scrape interval only repeats samples (and Prometheus refuses more than
    11,000 points per series), while a step far above it hides short spikes. Steps are rounded to
    whole seconds so the same window always gives the same grid (cache-friendly, comparable).
    """
    span = max((utc(end) - utc(start)).total_seconds(), 0.0)
    step = max(span / target_points, scrape_interval)
    if span / step > max_points:
        step = span / max_points
    return float(max(1, math.ceil(step)))



class PrometheusSource:
    """`MetricsSource` over a real Prometheus HTTP API (prometheus-api-client, wrapped for asyncio).

    prometheus-api-client is synchronous (requests), so every call runs in a worker thread with
    `asyncio.to_thread`; the HTTP timeout bounds each call and errors come back as
    `MetricsQueryError` naming the query, never as a requests traceback.
    """

    name = "prometheus"

    def __init__(self, url: str, *, timeout: float = 10.0, scrape_interval: float = 15.0,
                 component_label: str = "service", headers: dict[str, str] | None = None,
                 disable_ssl: bool = False, now: datetime | None = None, retries: int = 2) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.scrape_interval = scrape_interval
        self.component_label = component_label
        self.now = utc(now) if now is not None else None
        # the client's default retries 3x with 1 s backoff: too slow to fail for an agent in a loop
        retry = Retry(total=retries, backoff_factor=0.2, status_forcelist=[429, 502, 503, 504])
        self._prom = PrometheusConnect(url=self.url, headers=headers, disable_ssl=disable_ssl,
                                       timeout=timeout, retry=retry)

    @classmethod
    def from_settings(cls, settings: Any = None, **kw: Any) -> PrometheusSource:
        """Build from `PROMETHEUS_URL` (core.settings); raises ValueError if it is not set."""
        if settings is None:
            from core.settings import get_settings
            settings = get_settings()
        if not settings.PROMETHEUS_URL:
            raise ValueError("PROMETHEUS_URL is not set")
        return cls(settings.PROMETHEUS_URL, **kw)

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:  # requests/PrometheusApiClientException/...: one readable line
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MetricsQueryError(f"prometheus {self.url}: {what} failed: {type(exc).__name__}: "
                                    f"{msg[:300]}") from exc

    def _clamp(self, end: datetime) -> datetime:
        end = utc(end)
        return min(end, self.now) if self.now is not None else end

    async def query_range(self, query: str, start: datetime, end: datetime,
                          step_seconds: float | None = None) -> list[Series]:
        start, end = utc(start), self._clamp(end)
        if end < start:
            return []
        step = step_seconds or choose_step(start, end, scrape_interval=self.scrape_interval)
        raw = await self._call(f"query_range {query!r}", self._prom.custom_query_range,
                               query=query, start_time=start, end_time=end, step=f"{step:g}s")
        return [_series_from_prom(r) for r in raw]

    async def query_instant(self, query: str, at: datetime | None = None) -> list[Series]:
        """Instant query at `at` (default: now, or the source's `now` bound)."""
        at = self._clamp(at or datetime.now(UTC))
        raw = await self._call(f"query {query!r}", self._prom.custom_query, query=query,
                               params={"time": f"{at.timestamp():.3f}"})
        return [_series_from_prom(r) for r in raw]

    async def query_samples(self, query: str, start: datetime, end: datetime) -> list[Series]:
        """Raw samples in [start, end]: the selector as a range vector (`sel[Ns]`) evaluated at `end`.

        Unlike `query_range` nothing is resampled onto a step grid, so the points are exactly the
        scraped (or backfilled) samples with their own timestamps. Only for plain selectors.
        """
        start, end = utc(start), self._clamp(end)
        if end < start:
            return []
        seconds = max(1, math.ceil((end - start).total_seconds()))
        raw = await self._call(f"query {query!r}[{seconds}s]", self._prom.custom_query,
                               query=f"{query}[{seconds}s]", params={"time": f"{end.timestamp():.3f}"})
        out = []
        for r in raw:
            s = _series_from_prom(r)
            s.points = [(t, v) for t, v in s.points if t >= start]
            if s.points:
                out.append(s)
        return out

    async def label_values(self, label: str, match: str | None = None) -> list[str]:
        params = {"match[]": match} if match else None
        vals = await self._call(f"label values {label!r}", self._prom.get_label_values, label, params)
        return sorted(vals or [])

    async def series(self, match: str, start: datetime | None = None,
                     end: datetime | None = None) -> list[dict[str, str]]:
        """Series discovery (`/api/v1/series`): the label sets matching a selector."""
        params: dict[str, Any] = {"match[]": match}
        if start is not None:
            params["start"] = f"{utc(start).timestamp():.3f}"
        if end is not None or self.now is not None:
            params["end"] = f"{self._clamp(end or datetime.now(UTC)).timestamp():.3f}"

        def _get() -> list[dict[str, str]]:
            resp = self._prom._session.get(f"{self.url}/api/v1/series", params=params,
                                           headers=self._prom.headers, timeout=self.timeout,
                                           verify=self._prom._session.verify)
            resp.raise_for_status()
            return list(resp.json()["data"])

        return await self._call(f"series {match!r}", _get)

    async def list_metrics(self, component: str | None = None) -> list[str]:
        lbl = self.component_label
        match = f'{{{lbl}="{escape_label_value(component)}"}}' if component else f'{{{lbl}=~".+"}}'
        return await self.label_values("__name__", match)

    async def list_components(self) -> list[str]:
        return await self.label_values(self.component_label)

    async def healthy(self) -> bool:
        try:
            return bool(await asyncio.to_thread(self._prom.check_prometheus_connection))
        except Exception:
            return False


def _series_from_prom(r: dict[str, Any]) -> Series:
    labels = dict(r.get("metric", {}))
    name = labels.pop("__name__", "")
    raw = r.get("values") or ([r["value"]] if "value" in r else [])
    pts = [(datetime.fromtimestamp(float(t), UTC), float(v)) for t, v in raw]
    return Series(metric=name, labels=labels, points=pts)

