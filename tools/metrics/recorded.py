"""`MetricsSource` over recorded per-pod metric CSVs in the Nezha layout (the root-cause eval's data).

Column names map to Prometheus-legal metric names in one place (`metric_name_for_column`), pods to
their service in another (`service_of_pod`); files load lazily and are cached per process.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.models import utc
from tools.metric_types import Series
from tools.metrics.selector import Selector

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
_FRONT_FILE = re.compile(r"front_service\.csv(?:\.gz)?")


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
    - `<dir>/front_service.csv.gz` (ServiceName, SuccessRate(%), LatencyP50(s) ... P99(s)): what the
      load generator saw of the entry service, its success rate and latency per minute. Each column
      becomes a metric (`success_rate_percent`, `latency_p50_seconds`, ...) with labels `{service,
      scope: "entry"}`. The service is the file's `ServiceName` when it names a recorded service
      (case-insensitive), else the call graph's one entry point (the only service nobody calls);
      a file naming neither, or several services, is not read: its numbers would be pinned on a
      component they may not be about.
    - `<dir>/dependency.csv.gz` (Source,Target): the call graph (`call_graph()`).

    Files load lazily on first query and are cached per process. `now` is a hard upper time bound:
    nothing recorded after it can be read, so a replayed incident cannot peek at its own future.
    """

    name = "recorded"

    def __init__(self, metric_dirs: str | Path | Sequence[str | Path], *, now: datetime | None = None,
                 component_label: str = "service") -> None:
        dirs = [metric_dirs] if isinstance(metric_dirs, str | Path) else list(metric_dirs)
        self.metric_dirs = [Path(d) for d in dirs]
        self.now = utc(now) if now is not None else None
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
            fronts: list[Path] = []
            for d in self.metric_dirs:
                if not d.is_dir():
                    raise FileNotFoundError(f"metric directory not found: {d}")
                for p in sorted(d.iterdir()):
                    if m := _POD_FILE.fullmatch(p.name):
                        pods.append((p, m.group("pod")))
                    elif m := _EDGE_FILE.fullmatch(p.name):
                        edges.append((p, m.group("reporter"), m.group("q")))
                    elif _FRONT_FILE.fullmatch(p.name):
                        fronts.append(p)
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
            for path in fronts:
                service = self._entry_service(path, services)
                if service is None:
                    continue
                for col in _csv_header(path):
                    if col not in _NON_METRIC_COLUMNS:
                        entries.append(_Entry(path=path, column=col, metric=metric_name_for_column(col),
                                              labels={lbl: service, "scope": "entry"}))
            self._catalog = entries
        return self._catalog

    def _entry_service(self, path: Path, services: set[str]) -> str | None:
        """The recorded service a `front_service` file is about (see the class docstring), or None."""
        import pandas as pd

        names = {str(n) for n in pd.read_csv(path, usecols=["ServiceName"])["ServiceName"].dropna().unique()}
        if len(names) != 1:
            return None
        (name,) = names
        by_lower = {s.lower(): s for s in services}
        if name.lower() in by_lower:
            return by_lower[name.lower()]
        graph = self.call_graph() or {}
        callees = {c for callees in graph.values() for c in callees}
        roots = sorted(s for s in graph if s not in callees and s in services)
        return roots[0] if len(roots) == 1 else None

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
        start, end = utc(start), utc(end)
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
        at = utc(at) if at is not None else (self.now or datetime.now(UTC))
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

