"""Which PVE guest or node an alert is about, and what the cluster says about it, as observations.

Alerts name PVE objects in several ways: pve-exporter rules carry `id="qemu/101"`, `id="node/pve-01"`
or `id="storage/pve-01/local-zfs"`; hand-written rules often carry `vmid` and `pve_node`; a
node_exporter alert inside a guest only names the host (`host`, `nodename`, `instance`), which is the
guest's name in PVE. `resolve` tries them in that order against `/cluster/resources`.

`investigate` reads the guest's status, config, recent tasks (with the log of any that failed), its
node's status, the node's storage, and the RRD series of both, and ranks the series with the same
anomaly ranking that reads Prometheus. Every reading is an `Observation` diagnosis can cite; an RRD
anomaly's query is a selector `verify_metric` can re-run after a change.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from tools.proxmox.client import GuestRef, ProxmoxClient, ProxmoxError, check_node, check_vmid
from tools.proxmox.metrics import guest_series, node_series, rrd_source, timeframe_for
from tools.result import Observation

TOOL = "proxmox"
_ID = re.compile(r"^(?P<kind>qemu|lxc|node|storage)/(?P<rest>[A-Za-z0-9._/-]+)$")
_NAME_LABELS = ("vm", "guest", "host", "nodename", "instance")


class PveTarget(BaseModel):
    guest: GuestRef | None = None
    node: str | None = None
    storage: str | None = None


class ProxmoxFindings(BaseModel):
    target: PveTarget | None = None
    observations: list[Observation] = Field(default_factory=list)
    suspects: list[Any] = Field(default_factory=list)  # tools.analysis.metric_anomaly.Suspect
    error: str = ""


def hints(labels: dict[str, str]) -> dict[str, str]:
    """What the labels say about a PVE object, before asking the cluster (nothing is trusted yet)."""
    out: dict[str, str] = {}
    m = _ID.match(labels.get("id", ""))
    if m and m["kind"] in ("qemu", "lxc") and m["rest"].isdigit():
        out.update(kind=m["kind"], vmid=m["rest"])
    elif m and m["kind"] == "node":
        out["node"] = m["rest"]
    elif m and m["kind"] == "storage" and m["rest"].count("/") == 1:
        out["node"], out["storage"] = m["rest"].split("/")
    if labels.get("vmid", "").isdigit():
        out["vmid"] = labels["vmid"]
    for key in ("pve_node", "node"):
        if labels.get(key) and "node" not in out:
            out["node"] = labels[key]
    return out


def looks_like_pve(labels: dict[str, str]) -> bool:
    return bool(hints(labels)) or labels.get("alertname", "").startswith("Pve")


def _candidate_names(labels: dict[str, str]) -> list[str]:
    names = []
    for key in _NAME_LABELS:
        v = labels.get(key, "")
        if key == "instance":
            v = v.rsplit(":", 1)[0] if v.count(":") == 1 else v
        if v and v not in names:
            names.append(v)
    return names


def resolve(client: ProxmoxClient, labels: dict[str, str]) -> PveTarget | None:
    """The guest (and its node) or the node the alert is about; None when PVE knows neither."""
    h = hints(labels)
    guest = None
    if "vmid" in h:
        try:
            guest = client.find_guest(vmid=check_vmid(h["vmid"]))
        except ValueError:
            guest = None
    if guest is None:
        guests = client.guests()
        for name in _candidate_names(labels):
            guest = next((g for g in guests if g.name == name), None)
            if guest is not None:
                break
    node = guest.node if guest else None
    if node is None:
        nodes = {r["node"] for r in client.cluster_resources("node")}
        wanted = [h["node"]] if "node" in h else _candidate_names(labels)
        node = next((n for n in wanted if n in nodes), None)
    if guest is None and node is None:
        return None
    return PveTarget(guest=guest, node=node, storage=h.get("storage"))


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.0f}%"


def _gib(b: float | int | None) -> str:
    return "?" if b is None else f"{float(b) / 1024**3:.1f} GiB"


def _uptime(s: int | None) -> str:
    if not s:
        return "not up"
    d, rem = divmod(int(s), 86400)
    return f"up {d}d {rem // 3600}h" if d else f"up {rem // 3600}h {rem % 3600 // 60}m"


def _guest_observations(client: ProxmoxClient, g: GuestRef) -> list[Observation]:
    obs = []
    st = client.guest_status(g)
    cpu = float(st.get("cpu") or 0.0)
    mem = (float(st["mem"]) / float(st["maxmem"])) if st.get("maxmem") else None
    bad = st.get("status") != "running" or cpu >= 0.9 or (mem or 0) >= 0.9
    obs.append(Observation(
        tool=TOOL, query=f"GET {g.path}/status/current", component=g.label, signal="state", anomalous=bad,
        value=cpu, excerpt=(f"{g.label} ({g.kind}/{g.vmid} on {g.node}): {st.get('status')}, cpu {_pct(cpu)} of "
                            f"{st.get('maxcpu', '?')} cores, memory {_gib(st.get('mem'))}/{_gib(st.get('maxmem'))} "
                            f"({_pct(mem)}), {_uptime(st.get('uptime'))}"),
        extra={"status": st.get("status")}))
    cfg = client.guest_config(g)
    disks = [f"{k}={str(v).split(',')[0]}" for k, v in cfg.items()
             if re.fullmatch(r"(scsi|virtio|sata|ide|efidisk|tpmstate)\d+|rootfs|mp\d+", k) and "media=cdrom" not in str(v)]
    snap = client.can_snapshot(g)
    obs.append(Observation(
        tool=TOOL, query=f"GET {g.path}/config", component=g.label, signal="state",
        excerpt=(f"{g.label} config: {cfg.get('cores', 1)} cores x {cfg.get('sockets', 1)} socket(s), "
                 f"{cfg.get('memory', '?')} MiB; disks {', '.join(disks) or 'none'}; "
                 f"snapshots {'supported' if snap else 'NOT supported by its storage'}"),
        extra={"can_snapshot": snap}))
    tasks = client.tasks(g.node, vmid=g.vmid, limit=10)
    failed = [t for t in tasks if t.get("status") not in (None, "OK")]
    for t in failed[:2]:
        tail = [line for line in client.task_log(g.node, t["upid"]) if line][-3:]
        when = datetime.fromtimestamp(int(t.get("starttime", 0)), tz=UTC).strftime("%H:%MZ")
        obs.append(Observation(
            tool=TOOL, query=f"GET /nodes/{g.node}/tasks/{t['upid']}/log", component=g.label, signal="log",
            anomalous=True, excerpt=f"task {t.get('type')} on {g.label} failed at {when} ({t.get('user')}): "
                                    f"{t.get('status')}; log: {' | '.join(tail)}"[:400]))
    if tasks and not failed:
        obs.append(Observation(tool=TOOL, query=f"GET /nodes/{g.node}/tasks?vmid={g.vmid}", component=g.label,
                               excerpt=f"last {len(tasks)} tasks on {g.label} all ended OK "
                                       f"(latest: {tasks[0].get('type')})"))
    return obs


def _node_observations(client: ProxmoxClient, node: str, focus_storage: str | None) -> list[Observation]:
    obs = []
    st = client.node_status(node)
    cpu = float(st.get("cpu") or 0.0)
    memory = st.get("memory") or {}
    mem = (float(memory["used"]) / float(memory["total"])) if memory.get("total") else None
    obs.append(Observation(
        tool=TOOL, query=f"GET /nodes/{node}/status", component=node, signal="state", value=cpu,
        anomalous=cpu >= 0.9 or (mem or 0) >= 0.9 or float(st.get("wait") or 0) >= 0.2,
        excerpt=(f"node {node}: cpu {_pct(cpu)} of {(st.get('cpuinfo') or {}).get('cpus', '?')} cpus, io wait "
                 f"{_pct(st.get('wait'))}, load {', '.join(map(str, st.get('loadavg') or []))}, memory {_pct(mem)}, "
                 f"{_uptime(st.get('uptime'))}, {st.get('pveversion', '')}")))
    for s in client.storage(node):
        frac = float(s.get("used_fraction") or (s["used"] / s["total"] if s.get("total") else 0.0))
        if frac >= 0.8 or s.get("storage") == focus_storage:
            obs.append(Observation(
                tool=TOOL, query=f"GET /nodes/{node}/storage", component=f"{s.get('storage')}@{node}",
                signal="state", value=frac, anomalous=frac >= 0.8 or not s.get("active", 1),
                excerpt=(f"storage {s.get('storage')} ({s.get('type')}) on {node}: {_pct(frac)} used, "
                         f"{_gib(s.get('avail'))} free of {_gib(s.get('total'))}"
                         f"{'' if s.get('active', 1) else ', INACTIVE'}")))
    return obs


def _rrd_observations(suspects: list[Any], keep: set[str]) -> list[Observation]:
    obs = []
    for s in suspects:
        if s.component not in keep:
            continue
        for a in s.anomalies[:3]:
            obs.append(Observation(
                tool="proxmox_rrd", query=a.query, component=s.component, signal="metric", anomalous=True,
                value=a.value, baseline=a.baseline, score=a.score,
                excerpt=(f"{a.metric} {a.direction} to {a.value:.4g} (baseline {a.baseline:.4g}, anomaly score "
                         f"{a.score:.1f}; PVE RRD)")))
    return obs


def _investigate(client: ProxmoxClient, labels: dict[str, str], start: datetime, end: datetime,
                 baseline_start: datetime) -> tuple[PveTarget | None, list[Observation], list[Any]]:
    target = resolve(client, labels)
    if target is None:
        return None, [], []
    obs: list[Observation] = []
    series = []
    timeframe = timeframe_for(end - start)
    if target.guest is not None:
        obs += _guest_observations(client, target.guest)
        series += guest_series(client, target.guest, timeframe)
    if target.node is not None:
        check_node(target.node)
        obs += _node_observations(client, target.node, target.storage)
        series += node_series(client, target.node, timeframe)
    return target, obs, series


async def investigate(client: ProxmoxClient, labels: dict[str, str], start: datetime, end: datetime,
                      baseline_start: datetime) -> ProxmoxFindings:
    """Observations and RRD suspects for an alert; `error` (one line) when PVE could not be read."""
    from tools.analysis.metric_anomaly import rank_components

    try:
        target, obs, series = await asyncio.to_thread(_investigate, client, labels, start, end, baseline_start)
    except (ProxmoxError, ValueError) as exc:
        return ProxmoxFindings(error=str(exc))
    if target is None:
        return ProxmoxFindings()
    suspects = []
    if series:
        suspects = await rank_components(rrd_source(series), start, end, baseline_start=baseline_start)
        keep = {s.labels.get("service", "") for s in series}
        obs += _rrd_observations(suspects, keep)
    return ProxmoxFindings(target=target, observations=obs, suspects=[s for s in suspects if s.anomalies])
