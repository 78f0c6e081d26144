"""`MetricsSource` over a real Prometheus HTTP API (prometheus-api-client, wrapped for asyncio)."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime
from typing import Any

from core.models import utc
from core.resilience import CircuitOpenError, guarded
from core.settings import get_settings
from tools.metric_types import MetricsQueryError, MetricsUnavailable, Series, escape_label_value

BREAKER = "prometheus"
_STATUS = re.compile(r"HTTP Status Code (\d{3})")


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a failed Prometheus call (prometheus-api-client only puts it in the message)."""
    resp = getattr(exc, "response", None)
    if resp is not None and getattr(resp, "status_code", None):
        return int(resp.status_code)
    m = _STATUS.search(str(exc))
    return int(m.group(1)) if m else None


def is_outage(exc: BaseException) -> bool:
    """Prometheus' fault (cannot connect, timed out, 5xx, 429): counts against its breaker. A 4xx
    (bad PromQL, unknown endpoint) is a refusal from a healthy server: neither retried nor charged."""
    status = http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    return True  # requests' ConnectionError / Timeout / a reset: the server is not answering


def is_timeout(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, requests.Timeout)


def outage_reason(exc: BaseException) -> str:
    """A few words an operator reads in a report: "breaker open", "connection refused", "timed out"."""
    if isinstance(exc, CircuitOpenError):
        return "breaker open"
    text = f"{type(exc).__name__}: {exc}".lower()
    if "refused" in text:
        return "connection refused"
    if is_timeout(exc) or "timed out" in text or "timeout" in text:
        return "timed out"
    if (status := http_status(exc)) is not None:
        return f"HTTP {status}"
    return type(exc).__name__


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
                 disable_ssl: bool = False, now: datetime | None = None) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.scrape_interval = scrape_interval
        self.component_label = component_label
        self.now = utc(now) if now is not None else None
        # One retry layer only: core.resilience.guarded (whose every attempt the "prometheus" breaker
        # sees). The client's own urllib3 retries (3x, 1 s back-off by default) would multiply it
        # (3 x 3 connection attempts per query, each up to `timeout` on a hung server) unseen by
        # the breaker, so urllib3 makes exactly one attempt and a 5xx comes back as a response.
        # `False` (not 0): the error is raised as itself, so a read timeout stays `requests.ReadTimeout`
        # (not retried: a hung server would cost `timeout` per retry) instead of a ConnectionError.
        retry = Retry(total=False, raise_on_status=False)
        self._prom = PrometheusConnect(url=self.url, headers=headers, disable_ssl=disable_ssl,
                                       timeout=timeout, retry=retry)

    @classmethod
    def from_settings(cls, settings: Any = None, **kw: Any) -> PrometheusSource:
        """Build from `PROMETHEUS_URL` (core.settings); raises ValueError if it is not set."""
        if settings is None:
            settings = get_settings()
        if not settings.PROMETHEUS_URL:
            raise ValueError("PROMETHEUS_URL is not set")
        kw.setdefault("timeout", settings.PROMETHEUS_TIMEOUT)
        return cls(settings.PROMETHEUS_URL, **kw)

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """One read through the "prometheus" breaker, retried with back-off when Prometheus (not the
        query) failed; a hung server (timeout) is not retried: each retry would cost another
        `timeout`. Raises `MetricsUnavailable` for an outage, `MetricsQueryError` for a refusal."""
        try:
            return await guarded(BREAKER, lambda: asyncio.to_thread(fn, *args, **kwargs), counts=is_outage,
                                 never_retry=_timeouts())
        except Exception as exc:  # requests/PrometheusApiClientException/...: one readable line
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            text = f"prometheus {self.url}: {what} failed: {type(exc).__name__}: {msg[:300]}"
            if isinstance(exc, CircuitOpenError) or is_outage(exc):
                raise MetricsUnavailable(BREAKER, outage_reason(exc), text) from exc
            raise MetricsQueryError(text) from exc

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
            return bool(await self._call("ready check", self._prom.check_prometheus_connection))
        except MetricsQueryError:
            return False


def _timeouts() -> tuple[type[BaseException], ...]:
    import requests

    return (requests.Timeout,)


def _series_from_prom(r: dict[str, Any]) -> Series:
    labels = dict(r.get("metric", {}))
    name = labels.pop("__name__", "")
    raw = r.get("values") or ([r["value"]] if "value" in r else [])
    pts = [(datetime.fromtimestamp(float(t), UTC), float(v)) for t, v in raw]
    return Series(metric=name, labels=labels, points=pts)

