"""PVE RRD data as metric series, so the same anomaly ranking that reads Prometheus reads PVE.

`/nodes/{node}/rrddata` and `/nodes/{node}/{qemu|lxc}/{vmid}/rrddata` return one row per RRD step
(60 s for `timeframe=hour`, 30 min for `day`) with raw fields; here each field becomes a `Series`
named `pve_guest_*` / `pve_node_*`, labelled with the component (`service` = guest or node name, the
label the ranking groups by), node, type and vmid. Ratios are ratios (cpu 1.0 = every core busy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tools.metric_types import Series
from tools.metrics.inmemory import InMemoryMetricsSource
from tools.metrics.selector import Selector
from tools.proxmox.client import GuestRef, ProxmoxClient

Row = dict[str, Any]


def _ratio(num: str, den: str) -> Callable[[Row], float | None]:
    def f(r: Row) -> float | None:
        n, d = r.get(num), r.get(den)
        return None if n is None or not d else float(n) / float(d)
    return f


def _field(name: str) -> Callable[[Row], float | None]:
    def f(r: Row) -> float | None:
        v = r.get(name)
        return None if v is None else float(v)
    return f


GUEST_FIELDS: dict[str, Callable[[Row], float | None]] = {
    "pve_guest_cpu_ratio": _field("cpu"),
    "pve_guest_memory_used_ratio": _ratio("mem", "maxmem"),
    "pve_guest_network_in_bytes_per_second": _field("netin"),
    "pve_guest_network_out_bytes_per_second": _field("netout"),
    "pve_guest_disk_read_bytes_per_second": _field("diskread"),
    "pve_guest_disk_write_bytes_per_second": _field("diskwrite"),
}
NODE_FIELDS: dict[str, Callable[[Row], float | None]] = {
    "pve_node_cpu_ratio": _field("cpu"),
    "pve_node_iowait_ratio": _field("iowait"),
    "pve_node_load1": _field("loadavg"),
    "pve_node_memory_used_ratio": _ratio("memused", "memtotal"),
    "pve_node_swap_used_ratio": _ratio("swapused", "swaptotal"),
    "pve_node_rootfs_used_ratio": _ratio("rootused", "roottotal"),
    "pve_node_network_in_bytes_per_second": _field("netin"),
}


def timeframe_for(window: timedelta) -> str:
    """The finest RRD timeframe that still covers the detection `window` (hour: 70 x 1 min, day: 70 x
    30 min). The baseline before the window gets what is left of the timeframe: 1-minute resolution
    over the symptoms matters more than a full hour of baseline."""
    return "hour" if window <= timedelta(minutes=55) else "day" if window <= timedelta(hours=30) else "week"


def rows_to_series(rows: list[Row], fields: dict[str, Callable[[Row], float | None]],
                   labels: dict[str, str]) -> list[Series]:
    out = []
    for metric, get in fields.items():
        pts = []
        for r in rows:
            v = get(r)
            if v is not None and math.isfinite(v) and r.get("time") is not None:
                pts.append((datetime.fromtimestamp(int(r["time"]), tz=UTC), v))
        if pts:
            out.append(Series(metric=metric, labels=labels, points=sorted(pts)))
    return out


def guest_labels(ref: GuestRef) -> dict[str, str]:
    return {"service": ref.label, "node": ref.node, "type": ref.kind, "vmid": str(ref.vmid)}


def guest_series(client: ProxmoxClient, ref: GuestRef, timeframe: str = "hour") -> list[Series]:
    return rows_to_series(client.guest_rrd(ref, timeframe), GUEST_FIELDS, guest_labels(ref))


def node_series(client: ProxmoxClient, node: str, timeframe: str = "hour") -> list[Series]:
    return rows_to_series(client.node_rrd(node, timeframe), NODE_FIELDS, {"service": node, "node": node})


def rrd_source(series: list[Series]) -> InMemoryMetricsSource:
    """The series as a MetricsSource (what `rank_components` reads)."""
    return InMemoryMetricsSource(series)


def reread(client: ProxmoxClient, query: str, timeframe: str = "hour") -> Series | None:
    """Re-run an evidence query (`pve_guest_cpu_ratio{node=..,type=..,vmid=..}`) against PVE now."""
    sel = Selector.parse(query)
    labels = {k: v for k, op, v in sel.matchers if op == "="}
    if not sel.name:
        return None
    if sel.name in GUEST_FIELDS and {"node", "type", "vmid"} <= labels.keys():
        ref = GuestRef(node=labels["node"], kind=labels["type"], vmid=int(labels["vmid"]),  # type: ignore[arg-type]
                       name=labels.get("service", ""))
        series = guest_series(client, ref, timeframe)
    elif sel.name in NODE_FIELDS and "node" in labels:
        series = node_series(client, labels["node"], timeframe)
    else:
        return None
    return next((s for s in series if s.metric == sel.name), None)
