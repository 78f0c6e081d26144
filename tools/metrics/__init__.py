"""Metrics tools: a `MetricsSource` protocol, its backends, and LangChain tool wrappers.

Queries are PromQL. Backends that are not Prometheus (recorded data, replays) support the subset the
agents use: an instant-vector selector `metric_name{label="value", other=~"regex"}`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field


class Series(BaseModel):
    """One time series: a metric name, its labels and (time, value) points in time order."""

    metric: str
    labels: dict[str, str] = Field(default_factory=dict)
    points: list[tuple[datetime, float]] = Field(default_factory=list)

    def values(self) -> list[float]:
        return [v for _, v in self.points]


@runtime_checkable
class MetricsSource(Protocol):
    """What the diagnosis agent needs from a metrics backend."""

    name: str

    async def query_range(self, query: str, start: datetime, end: datetime,
                          step_seconds: float | None = None) -> list[Series]: ...

    async def list_metrics(self, component: str | None = None) -> list[str]: ...

    async def list_components(self) -> list[str]: ...


_SELECTOR = re.compile(r"^\s*(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(?P<matchers>.*)\})?\s*$")
_MATCHER = re.compile(r'\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*,?')


class Selector(BaseModel):
    """A parsed PromQL instant-vector selector (the subset non-Prometheus backends support)."""

    name: str | None = None
    matchers: list[tuple[str, str, str]] = Field(default_factory=list)

    @classmethod
    def parse(cls, query: str) -> Selector:
        m = _SELECTOR.match(query)
        if not m:
            raise ValueError(f"unsupported query for a recorded source (only selectors): {query!r}")
        matchers: list[tuple[str, str, str]] = []
        rest = m.group("matchers") or ""
        pos = 0
        while pos < len(rest.strip()):
            mm = _MATCHER.match(rest, pos)
            if not mm:
                raise ValueError(f"cannot parse label matchers in {query!r}")
            matchers.append((mm.group("label"), mm.group("op"), mm.group("value")))
            pos = mm.end()
        if not m.group("name") and not matchers:
            raise ValueError(f"empty selector: {query!r}")
        return cls(name=m.group("name"), matchers=matchers)

    def matches(self, metric: str, labels: dict[str, str]) -> bool:
        if self.name and self.name != metric:
            return False
        for label, op, value in self.matchers:
            actual = metric if label == "__name__" else labels.get(label, "")
            if op == "=" and actual != value:
                return False
            if op == "!=" and actual == value:
                return False
            if op == "=~" and not re.fullmatch(value, actual):
                return False
            if op == "!~" and re.fullmatch(value, actual):
                return False
        return True


class InMemoryMetricsSource:
    """Series held in memory, e.g. a recorded incident replayed by `aiops demo`.

    `now` bounds what can be read: a query never sees points after it (no future data), which is how
    a replay advances time for verification after a remediation ran.
    """

    name = "recorded"

    def __init__(self, series: Iterable[Series], now: datetime | None = None,
                 component_label: str = "service") -> None:
        self._series = list(series)
        self.now = now
        self.component_label = component_label

    async def query_range(self, query: str, start: datetime, end: datetime,
                          step_seconds: float | None = None) -> list[Series]:
        sel = Selector.parse(query)
        if self.now is not None:
            end = min(end, self.now)
        out = []
        for s in self._series:
            if sel.matches(s.metric, s.labels):
                pts = [(t, v) for t, v in s.points if start <= t <= end]
                if pts:
                    out.append(Series(metric=s.metric, labels=s.labels, points=pts))
        return out

    async def list_metrics(self, component: str | None = None) -> list[str]:
        return sorted({s.metric for s in self._series
                       if component is None or s.labels.get(self.component_label) == component})

    async def list_components(self) -> list[str]:
        return sorted({s.labels[self.component_label] for s in self._series
                       if self.component_label in s.labels})


# ------------------------------------------------------------------------------ shared helpers --
def _utc(dt: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted. Everything inside is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def choose_step(start: datetime, end: datetime, *, scrape_interval: float = 15.0,
                target_points: int = 500, max_points: int = 1000) -> float:
    """A range-query step giving about `target_points` points, never finer than the scrape interval.

    Why: a step below the scrape interval only repeats samples (and Prometheus refuses more than
    11,000 points per series), while a step far above it hides short spikes. Steps are rounded to
    whole seconds so the same window always gives the same grid (cache-friendly, comparable).
    """
    span = max((_utc(end) - _utc(start)).total_seconds(), 0.0)
    step = max(span / target_points, scrape_interval)
    if span / step > max_points:
        step = span / max_points
    return float(max(1, math.ceil(step)))


class MetricsQueryError(RuntimeError):
    """A backend refused or failed a query; the message says which query and why, in one line."""


# ------------------------------------------------------------------------------- Prometheus --
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
        self.now = _utc(now) if now is not None else None
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
        end = _utc(end)
        return min(end, self.now) if self.now is not None else end

    async def query_range(self, query: str, start: datetime, end: datetime,
                          step_seconds: float | None = None) -> list[Series]:
        start, end = _utc(start), self._clamp(end)
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
        start, end = _utc(start), self._clamp(end)
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
            params["start"] = f"{_utc(start).timestamp():.3f}"
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
        match = f'{{{lbl}="{_escape(component)}"}}' if component else f'{{{lbl}=~".+"}}'
        return await self.label_values("__name__", match)

    async def list_components(self) -> list[str]:
        return await self.label_values(self.component_label)

    async def healthy(self) -> bool:
        try:
            return bool(await asyncio.to_thread(self._prom.check_prometheus_connection))
        except Exception:
            return False


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _series_from_prom(r: dict[str, Any]) -> Series:
    labels = dict(r.get("metric", {}))
    name = labels.pop("__name__", "")
    raw = r.get("values") or ([r["value"]] if "value" in r else [])
    pts = [(datetime.fromtimestamp(float(t), UTC), float(v)) for t, v in raw]
    return Series(metric=name, labels=labels, points=pts)


# -------------------------------------------------------------------- recorded (Nezha layout) --
# Recorded CSV column -> Prometheus-legal metric name. The one place this mapping lives: the
# recorded source, the OpenMetrics export and the tests all go through `metric_name_for_column`.
_UNIT_SUFFIX = {"%": "percent", "s": "seconds", "ms": "milliseconds", "m": "millicores",
                "Mi": "mebibytes", "Ops": "ops", "B": "bytes"}
_NON_METRIC_COLUMNS = {"Time", "TimeStamp", "PodName", "time", "timestamp", "ServiceName"}


def metric_name_for_column(column: str) -> str:
    """`CpuUsageRate(%)` -> `cpu_usage_rate_percent`, `PodServerLatencyP90(s)` ->
    `pod_server_latency_p90_seconds`, `NetworkReceiveBytes` -> `network_receive_bytes`."""
    m = re.fullmatch(r"(?P<base>[^()]+?)\s*(?:\((?P<unit>[^()]*)\))?", column.strip())
    base, unit = (m.group("base"), m.group("unit")) if m else (column, None)
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", base)
    snake = re.sub(r"[^a-zA-Z0-9_]+", "_", snake).strip("_").lower()
    if unit:
        snake += "_" + _UNIT_SUFFIX.get(unit, re.sub(r"[^a-zA-Z0-9]+", "_", unit).lower())
    if not re.match(r"[a-zA-Z_]", snake):
        snake = "m_" + snake
    return snake


# Kubernetes generates pod-template hashes and pod suffixes from a vowel-free alphabet
# (k8s.io/apimachinery rand.SafeEncodeString), which is what tells "-x7k2p" from "-exporter".
_K8S = "[bcdfghjklmnpqrstvwxz2456789]"
_POD_SUFFIXES = (
    re.compile(rf"^(?P<svc>.+)-{_K8S}{{5,10}}-{_K8S}{{5}}$"),  # Deployment: <svc>-<replicaset>-<pod>
    re.compile(r"^(?P<svc>.+)-[0-9]+$"),  # StatefulSet: <svc>-<ordinal>
    re.compile(rf"^(?P<svc>.+)-{_K8S}{{5}}$"),  # DaemonSet / bare ReplicaSet: <svc>-<pod>
)


def service_of_pod(pod: str) -> str:
    """The service a pod belongs to: the pod name without its replica-set and pod suffixes."""
    for rx in _POD_SUFFIXES:
        m = rx.match(pod)
        if m:
            return m.group("svc")
    return pod


_IP = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?$")
_FRAME_CACHE: dict[tuple[str, float], Any] = {}
_FRAME_LOCK = threading.Lock()


def _load_metric_csv(path: Path) -> Any:
    """A recorded CSV as a DataFrame indexed by UTC time (numeric columns only, original names).

    Cached per process (keyed by path and mtime): an eval diagnoses dozens of incidents against the
    same day of data. The `Time` column is used, not `TimeStamp`, which is wrong in some files.
    """
    import pandas as pd

    key = (str(path), path.stat().st_mtime)
    with _FRAME_LOCK:
        cached = _FRAME_CACHE.get(key)
    if cached is not None:
        return cached
    df = pd.read_csv(path)
    time_col = "Time" if "Time" in df.columns else "time"
    times = pd.to_datetime(df[time_col].astype(str).str.slice(0, 26), utc=True, format="ISO8601")
    cols = [c for c in df.columns if c not in _NON_METRIC_COLUMNS]
    out = df[cols].apply(pd.to_numeric, errors="coerce")
    out.index = times
    out = out[~out.index.isna()].sort_index()
    out = out[~out.index.duplicated(keep="last")]
    with _FRAME_LOCK:
        _FRAME_CACHE[key] = out
    return out


def _csv_header(path: Path) -> list[str]:
    import pandas as pd

    return [str(c) for c in pd.read_csv(path, nrows=0).columns]


_POD_FILE = re.compile(r"(?P<pod>.+)_metric\.csv(?:\.gz)?")
_EDGE_FILE = re.compile(r"(?P<reporter>source|destination)_(?P<q>\d{1,2})\.csv(?:\.gz)?")


class _Entry(BaseModel):
    """One recorded series: which file and column hold it, and its metric name and labels."""

    path: Path
    column: str
    metric: str
    labels: dict[str, str]


class RecordedMetricsSource:
    """`MetricsSource` over recorded metric CSVs in the Nezha layout.

    - `<dir>/<pod>_metric.csv.gz` (or `.csv`): one row per minute, one column per metric. Each column
      becomes a metric (`metric_name_for_column`) with labels `{service, pod}`; the service is the
      pod name without its replica-set and pod suffixes.
    - `<dir>/source_50.csv.gz`, `destination_50.csv.gz` (Istio request latency per call edge,
      `<caller>_<callee>` columns, as the caller or callee sidecar reported it): metric
      `edge_latency_p50_seconds` with labels `{service: callee, source_service, destination_service,
      reporter}` — the same shape as Istio's `destination_service`-keyed metrics, so a slow callee
      shows up under its own name.
    - `<dir>/dependency.csv.gz` (Source,Target): the call graph (`call_graph()`).

    Files load lazily on first query and are cached per process. `now` is a hard upper time bound:
    nothing recorded after it can be read, so a replayed incident cannot peek at its own future.
    """

    name = "recorded"

    def __init__(self, metric_dirs: str | Path | Sequence[str | Path], *, now: datetime | None = None,
                 component_label: str = "service") -> None:
        dirs = [metric_dirs] if isinstance(metric_dirs, str | Path) else list(metric_dirs)
        self.metric_dirs = [Path(d) for d in dirs]
        self.now = _utc(now) if now is not None else None
        self.component_label = component_label
        self._catalog: list[_Entry] | None = None

    @classmethod
    def nezha(cls, data_dir: str | Path, system: str, date: str, *,
              now: datetime | None = None) -> RecordedMetricsSource:
        """`<data_dir>/nezha-rca/<system>/<date>/metric` (or `<data_dir>/<system>/<date>/metric`)."""
        base = Path(data_dir)
        for cand in (base / "nezha-rca" / system / date / "metric", base / system / date / "metric"):
            if cand.is_dir():
                return cls(cand, now=now)
        raise FileNotFoundError(f"no metric directory for {system}/{date} under {base}")

    def at(self, now: datetime | None) -> RecordedMetricsSource:
        """The same recording with another time bound (shares the catalog and the frame cache)."""
        other = RecordedMetricsSource(self.metric_dirs, now=now, component_label=self.component_label)
        other._catalog = self._entries()
        return other

    # --- discovery ------------------------------------------------------------------------------
    def _entries(self) -> list[_Entry]:
        if self._catalog is None:
            lbl = self.component_label
            pods: list[tuple[Path, str]] = []
            edges: list[tuple[Path, str, str]] = []
            for d in self.metric_dirs:
                if not d.is_dir():
                    raise FileNotFoundError(f"metric directory not found: {d}")
                for p in sorted(d.iterdir()):
                    if m := _POD_FILE.fullmatch(p.name):
                        pods.append((p, m.group("pod")))
                    elif m := _EDGE_FILE.fullmatch(p.name):
                        edges.append((p, m.group("reporter"), m.group("q")))
            entries: list[_Entry] = []
            for path, pod in pods:
                labels = {lbl: service_of_pod(pod), "pod": pod}
                for col in _csv_header(path):
                    if col not in _NON_METRIC_COLUMNS:
                        entries.append(_Entry(path=path, column=col, metric=metric_name_for_column(col),
                                              labels=labels))
            services = {service_of_pod(pod) for _, pod in pods}
            for path, reporter, q in edges:
                for col in _csv_header(path):
                    if col in _NON_METRIC_COLUMNS:
                        continue
                    src, dst = _split_edge(col, services)
                    entries.append(_Entry(path=path, column=col, metric=f"edge_latency_p{q}_seconds",
                                          labels={lbl: dst, "source_service": src,
                                                  "destination_service": dst, "reporter": reporter}))
            self._catalog = entries
        return self._catalog

    async def list_components(self) -> list[str]:
        return sorted({e.labels[self.component_label] for e in self._entries()})

    async def list_pods(self, component: str | None = None) -> list[str]:
        return sorted({e.labels["pod"] for e in self._entries() if "pod" in e.labels and
                       (component is None or e.labels[self.component_label] == component)})

    async def list_metrics(self, component: str | None = None) -> list[str]:
        return sorted({e.metric for e in self._entries()
                       if component is None or e.labels.get(self.component_label) == component})

    async def label_values(self, label: str, match: str | None = None) -> list[str]:
        sel = Selector.parse(match) if match else None
        vals = {e.metric if label == "__name__" else e.labels.get(label, "")
                for e in self._entries() if sel is None or sel.matches(e.metric, e.labels)}
        vals.discard("")
        return sorted(vals)

    async def series(self, match: str) -> list[dict[str, str]]:
        """Series discovery: the label sets (with `__name__`) matching a selector."""
        sel = Selector.parse(match)
        return [{"__name__": e.metric, **e.labels} for e in self._entries() if sel.matches(e.metric, e.labels)]

    def call_graph(self) -> dict[str, list[str]] | None:
        """Caller -> callees from a `dependency.csv[.gz]` (Source,Target) next to the metrics.

        Peers that are bare IP addresses (load generators, node addresses) are dropped: they are
        not components anyone can act on.
        """
        import pandas as pd

        for d in self.metric_dirs:
            for name in ("dependency.csv.gz", "dependency.csv"):
                p = d / name
                if p.exists():
                    df = pd.read_csv(p)
                    graph: dict[str, list[str]] = {}
                    for src, dst in zip(df.iloc[:, 0].astype(str), df.iloc[:, 1].astype(str), strict=True):
                        if _IP.match(src) or _IP.match(dst):
                            continue
                        if src != dst and dst not in graph.setdefault(src, []):
                            graph[src].append(dst)
                    return graph
        return None

    # --- queries --------------------------------------------------------------------------------
    async def query_range(self, query: str, start: datetime, end: datetime,
                          step_seconds: float | None = None) -> list[Series]:
        return self.query_range_sync(query, start, end, step_seconds)

    def query_range_sync(self, query: str, start: datetime, end: datetime,
                         step_seconds: float | None = None) -> list[Series]:
        """Synchronous `query_range` (the data is local; the async method only wraps this)."""
        import pandas as pd

        sel = Selector.parse(query)
        start, end = _utc(start), _utc(end)
        if self.now is not None:
            end = min(end, self.now)
        if end < start:
            return []
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        out: list[Series] = []
        for e in self._entries():
            if not sel.matches(e.metric, e.labels):
                continue
            frame = _load_metric_csv(e.path)
            col = frame[e.column]
            col = col.loc[(col.index >= lo) & (col.index <= hi)].dropna()
            if step_seconds and step_seconds > 60 and len(col):
                col = col.resample(f"{int(step_seconds)}s", origin=lo).mean().dropna()
            if len(col):
                pts = [(t.to_pydatetime(), float(v)) for t, v in col.items()]
                out.append(Series(metric=e.metric, labels=dict(e.labels), points=pts))
        return out

    async def query_samples(self, query: str, start: datetime, end: datetime) -> list[Series]:
        """The raw recorded samples in [start, end] (what a Prometheus range selector returns)."""
        return self.query_range_sync(query, start, end)

    async def query_instant(self, query: str, at: datetime | None = None,
                            lookback_seconds: float = 300.0) -> list[Series]:
        """The latest point at or before `at` (Prometheus' 5-minute lookback), one per series."""
        at = _utc(at) if at is not None else (self.now or datetime.now(UTC))
        if self.now is not None:
            at = min(at, self.now)
        series = self.query_range_sync(query, at - timedelta(seconds=lookback_seconds), at)
        return [Series(metric=s.metric, labels=s.labels, points=s.points[-1:]) for s in series]


def _split_edge(column: str, services: set[str]) -> tuple[str, str]:
    """`frontend_cartservice` -> (frontend, cartservice), preferring a split into known services."""
    parts = column.split("_")
    for i in range(1, len(parts)):
        src, dst = "_".join(parts[:i]), "_".join(parts[i:])
        if src in services and dst in services:
            return src, dst
    src, _, dst = column.partition("_")
    return src, dst or column


# ------------------------------------------------------------------------------ LangChain tools --
def _source_now(source: MetricsSource) -> datetime:
    """The source's pinned clock (replays, evals) or the wall clock: tools never look past it."""
    now = getattr(source, "now", None)
    return _utc(now) if now is not None else datetime.now(UTC)


def _selector_for(metric: str, service: str | None, pod: str | None, component_label: str) -> str:
    matchers = []
    if service:
        matchers.append(f'{component_label}="{_escape(service)}"')
    if pod:
        matchers.append(f'pod="{_escape(pod)}"')
    return f"{metric}{{{','.join(matchers)}}}" if matchers else metric


def _fmt(x: float) -> float:
    return float(f"{x:.4g}") if math.isfinite(x) else x


def summarize_series(s: Series, buckets: int = 12) -> dict[str, Any]:
    """A few numbers and a coarse shape instead of every point: what an LLM can actually read."""
    vals = s.values()
    out: dict[str, Any] = {"metric": s.metric, "labels": s.labels, "points": len(vals)}
    if not vals:
        return out
    srt = sorted(vals)
    out.update(first=s.points[0][0].isoformat(), last_time=s.points[-1][0].isoformat(),
               min=_fmt(srt[0]), median=_fmt(srt[len(srt) // 2]), max=_fmt(srt[-1]), last=_fmt(vals[-1]))
    step = max(1, math.ceil(len(vals) / buckets))
    out["shape"] = [_fmt(sum(vals[i:i + step]) / len(vals[i:i + step])) for i in range(0, len(vals), step)]
    return out


class QueryMetricArgs(BaseModel):
    metric: str = Field(description="metric name, e.g. cpu_usage_rate_percent (see list_metrics)")
    service: str | None = Field(None, description="only this service/component")
    pod: str | None = Field(None, description="only this pod")
    minutes: int = Field(30, ge=1, le=24 * 60, description="how far back from now to look")


class ListMetricsArgs(BaseModel):
    service: str | None = Field(None, description="only metrics this service/component has")


class CompareBaselineArgs(BaseModel):
    metric: str = Field(description="metric name (see list_metrics)")
    service: str | None = Field(None, description="only this service/component")
    window_minutes: int = Field(10, ge=1, le=24 * 60, description="recent window, ending now")
    baseline_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="baseline just before the window")


class RankSuspectsArgs(BaseModel):
    window_minutes: int = Field(10, ge=1, le=24 * 60, description="recent window, ending now")
    baseline_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="baseline before the window")
    top: int = Field(5, ge=1, le=50, description="how many suspects to return")


def make_metric_tools(source: MetricsSource, *, call_graph: dict[str, list[str]] | None = None,
                      component_label: str = "service", max_series: int = 20) -> list[Any]:
    """LangChain tools over a `MetricsSource`, with typed (Pydantic) arguments.

    Every tool answers relative to the source's clock (`now` for replays) and returns compact JSON:
    summaries and comparisons, never thousands of raw points.
    """
    from langchain_core.tools import StructuredTool

    def dump(obj: Any) -> str:
        return json.dumps(obj, default=str, separators=(",", ":"))

    async def query_metric(metric: str, service: str | None = None, pod: str | None = None,
                           minutes: int = 30) -> str:
        end = _source_now(source)
        q = _selector_for(metric, service, pod, component_label)
        series = await source.query_range(q, end - timedelta(minutes=minutes), end)
        return dump({"query": q, "start": (end - timedelta(minutes=minutes)).isoformat(), "end": end.isoformat(),
                     "series": [summarize_series(s) for s in series[:max_series]],
                     "omitted_series": max(0, len(series) - max_series)})

    async def list_metrics(service: str | None = None) -> str:
        metrics = await source.list_metrics(service)
        out: dict[str, Any] = {"service": service, "metrics": metrics}
        if service is None:
            out["services"] = await source.list_components()
        return dump(out)

    async def compare_to_baseline(metric: str, service: str | None = None, window_minutes: int = 10,
                                  baseline_minutes: int = 60) -> str:
        end = _source_now(source)
        start = end - timedelta(minutes=window_minutes)
        base_start = start - timedelta(minutes=baseline_minutes)
        q = _selector_for(metric, service, None, component_label)
        series = await source.query_range(q, base_start, end)
        rows: list[dict[str, Any]] = []
        for s in series[:max_series]:
            base = [v for t, v in s.points if t < start and math.isfinite(v)]
            win = [v for t, v in s.points if t >= start and math.isfinite(v)]
            if not win:
                continue
            b_med = statistics.median(base) if base else math.nan
            mad = statistics.median([abs(x - b_med) for x in base]) * 1.4826 if base else math.nan
            w_med = statistics.median(win)
            peak = max(win, key=lambda x: abs(x - b_med)) if base else win[-1]
            scale = max(mad, 0.05 * abs(b_med), 1e-9) if base else math.nan
            z = (peak - b_med) / scale if base else math.nan
            rows.append({"labels": s.labels, "baseline_median": _fmt(b_med), "baseline_mad": _fmt(mad),
                         "window_median": _fmt(w_med), "window_peak": _fmt(peak), "window_last": _fmt(win[-1]),
                         "robust_z": _fmt(z), "direction": "up" if (z if math.isfinite(z) else 0) >= 0 else "down",
                         "anomalous": bool(math.isfinite(z) and abs(z) >= 3.0)})
        rows.sort(key=lambda r: -abs(r["robust_z"]) if math.isfinite(r["robust_z"]) else 0)
        return dump({"query": q, "window": [start.isoformat(), end.isoformat()],
                     "baseline": [base_start.isoformat(), start.isoformat()], "series": rows})

    async def rank_suspects(window_minutes: int = 10, baseline_minutes: int = 60, top: int = 5) -> str:
        from tools.analysis.metric_anomaly import rank_components

        end = _source_now(source)
        start = end - timedelta(minutes=window_minutes)
        suspects = await rank_components(source, start, end, baseline_start=start - timedelta(minutes=baseline_minutes),
                                         call_graph=call_graph, component_label=component_label)
        return dump([{"component": s.component, "score": round(s.score, 2),
                      "evidence": [{"metric": a.metric, "query": a.query, "direction": a.direction,
                                    "value": _fmt(a.value), "baseline": _fmt(a.baseline), "score": round(a.score, 1)}
                                   for a in s.anomalies[:3]]} for s in suspects[:top]])

    return [
        StructuredTool.from_function(
            coroutine=query_metric, name="query_metric", args_schema=QueryMetricArgs,
            description="Summarise one metric (optionally for one service/pod) over the last N minutes: "
                        "min/median/max/last and a coarse shape per series."),
        StructuredTool.from_function(
            coroutine=list_metrics, name="list_metrics", args_schema=ListMetricsArgs,
            description="List the metric names that exist (for one service, or all, with the services)."),
        StructuredTool.from_function(
            coroutine=compare_to_baseline, name="compare_to_baseline", args_schema=CompareBaselineArgs,
            description="Compare a metric's recent window with the baseline just before it, per series: "
                        "medians, peak, robust z-score, direction, anomalous or not."),
        StructuredTool.from_function(
            coroutine=rank_suspects, name="rank_suspects", args_schema=RankSuspectsArgs,
            description="Rank the components whose metrics are most abnormal now, with the metric evidence."),
    ]


# ---------------------------------------------------------------------------- OpenMetrics export --
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
                    lines.append(f"{head} {v!r} {_utc(t).timestamp():.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
