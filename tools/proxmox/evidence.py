"""Which PVE guest or node an alert is about, and what the cluster says about it, as observations.

Alerts name PVE objects in several ways: pve-exporter rules carry `id="qemu/101"`, `id="node/pve-01"`
or `id="storage/pve-01/local-zfs"`; hand-written rules often carry `vmid` and `pve_node`; a
node_exporter alert inside a guest only names the host (`host`, `nodename`, `instance`), which is the
guest's name in PVE. `resolve` tries them in that order against `/cluster/resources`.

`investigate` reads the guest's status, config, recent tasks (with the log of any that failed), its
node's status, the node's storage, and the RRD series of both (and, for an alert about the node itself
or a node whose own series are saturated, what a reboot of it would take down: `node_reboot.impact`),
and ranks the series with the same anomaly ranking that reads Prometheus. Every reading is an `Observation` diagnosis can cite; an RRD
anomaly's query is a selector `verify_metric` can re-run after a change.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from pydantic import BaseModel, Field

from tools.analysis.metric_anomaly import rank_components
from tools.proxmox import node_reboot
from tools.proxmox.client import GuestRef, ProxmoxClient, ProxmoxError, check_node, check_vmid
from tools.proxmox.metrics import guest_series, node_series, rrd_source, timeframe_for
from tools.result import UNREAD, Observation

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


def _when(epoch: Any) -> str:
    return datetime.fromtimestamp(int(epoch or 0), tz=UTC).strftime("%H:%MZ")


def guest_about(g: GuestRef) -> dict[str, str]:
    return {"vmid": str(g.vmid), "node": g.node, **({"host": g.name} if g.name else {})}


class _Items:
    """Observations read one item at a time: a failed read is one "could not read X" item, not a lost toolset."""

    def __init__(self) -> None:
        self.obs: list[Observation] = []

    def read(self, what: str, query: str, about: dict[str, str], fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (ProxmoxError, ValueError) as exc:
            self.obs.append(Observation(tool=TOOL, query=query, signal="state", anomalous=False, about=about,
                                        component=about.get("host") or about.get("node", ""),
                                        excerpt=f"{UNREAD} {what}: {exc}"[:400]))
            return None


# Task types that start or stop a guest (qemu `qm*`, containers `vz*`).
_STARTS = {"qmstart", "vzstart", "qmreboot", "vzreboot", "qmresume", "vzresume"}
_STOPS = {"qmstop", "qmshutdown", "vzstop", "vzshutdown", "qmsuspend", "vzsuspend"}


def stop_reading(g: GuestRef, status: dict[str, Any], tasks: list[dict[str, Any]]) -> Observation:
    """Why a stopped guest is stopped, as far as PVE knows: HA owns it, someone stopped it, or nobody did.

    "Unexpectedly" means: its last start ended OK and no stop, shutdown or suspend task ran after it, by
    anyone (a person, a script, aiops itself): the guest died under the host (OOM killer, a QEMU crash)."""
    about = guest_about(g)
    q = f"GET /nodes/{g.node}/tasks?vmid={g.vmid}"
    ha = status.get("ha") or {}
    if ha.get("managed"):
        return Observation(tool=TOOL, query=q, component=g.label, signal="state", about=about,
                           excerpt=f"{g.label} is HA-managed (state {ha.get('state', '?')}): the HA manager starts "
                                   "and stops it, not aiops")
    done = sorted((t for t in tasks if t.get("status") is not None), key=lambda t: -int(t.get("starttime", 0)))
    start = next((t for t in done if t.get("type") in _STARTS and t.get("status") == "OK"), None)
    if start is None:
        return Observation(tool=TOOL, query=q, component=g.label, signal="state", about=about,
                           excerpt=f"{g.label} is stopped; no successful start on record in its last {len(done)} "
                                   "tasks: whether it stopped on purpose is unknown")
    after = [t for t in done if t.get("type") in _STOPS and int(t.get("starttime", 0)) >= int(start["starttime"])]
    if after:
        t = after[0]
        return Observation(tool=TOOL, query=q, component=g.label, signal="state", about=about,
                           excerpt=f"{g.label} was stopped on purpose: {t.get('type')} by {t.get('user')} at "
                                   f"{_when(t.get('starttime'))} ({t.get('status')}) after its last start "
                                   f"({start.get('type')} at {_when(start.get('starttime'))})")
    return Observation(tool=TOOL, query=q, component=g.label, signal="state", anomalous=True, about=about,
                       excerpt=f"{g.label} stopped unexpectedly: its last start ({start.get('type')} by "
                               f"{start.get('user')} at {_when(start.get('starttime'))}) ended OK and no stop, "
                               "shutdown or suspend task ran since; not HA-managed")


def _guest_observations(client: ProxmoxClient, g: GuestRef, items: _Items) -> None:
    about = guest_about(g)
    st = items.read(f"the status of guest {g.label}", f"GET {g.path}/status/current", about,
                    lambda: client.guest_status(g))
    if st is not None:
        cpu = float(st.get("cpu") or 0.0)
        mem = (float(st["mem"]) / float(st["maxmem"])) if st.get("maxmem") else None
        bad = st.get("status") != "running" or cpu >= 0.9 or (mem or 0) >= 0.9
        items.obs.append(Observation(
            tool=TOOL, query=f"GET {g.path}/status/current", component=g.label, signal="state", anomalous=bad,
            value=cpu, about=about,
            excerpt=(f"{g.label} ({g.kind}/{g.vmid} on {g.node}): {st.get('status')}, cpu {_pct(cpu)} of "
                     f"{st.get('maxcpu', '?')} cores, memory {_gib(st.get('mem'))}/{_gib(st.get('maxmem'))} "
                     f"({_pct(mem)}), {_uptime(st.get('uptime'))}"),
            extra={"status": st.get("status")}))
    cfg = items.read(f"the configuration of guest {g.label}", f"GET {g.path}/config", about,
                     lambda: client.guest_config(g))
    if cfg is not None:
        disks = [f"{k}={str(v).split(',')[0]}" for k, v in cfg.items()
                 if re.fullmatch(r"(scsi|virtio|sata|ide|efidisk|tpmstate)\d+|rootfs|mp\d+", k)
                 and "media=cdrom" not in str(v)]
        snap = items.read(f"whether guest {g.label} can be snapshotted", f"GET {g.path}/feature", about,
                          lambda: client.can_snapshot(g))
        snaps = "snapshots ?" if snap is None else f"snapshots {'supported' if snap else 'NOT supported by its storage'}"
        items.obs.append(Observation(
            tool=TOOL, query=f"GET {g.path}/config", component=g.label, signal="state", about=about,
            excerpt=(f"{g.label} config: {cfg.get('cores', 1)} cores x {cfg.get('sockets', 1)} socket(s), "
                     f"{cfg.get('memory', '?')} MiB; disks {', '.join(disks) or 'none'}; {snaps}"),
            extra={"can_snapshot": snap}))
    tasks = items.read(f"the task history of guest {g.label}", f"GET /nodes/{g.node}/tasks?vmid={g.vmid}", about,
                       lambda: client.tasks(g.node, vmid=g.vmid, limit=50))
    if tasks is None:
        return
    if st is not None and st.get("status") == "stopped":
        items.obs.append(stop_reading(g, st, tasks))
    failed = [t for t in tasks if t.get("status") not in (None, "OK")]
    for t in failed[:2]:
        upid = str(t["upid"])
        log = items.read(f"the log of task {t.get('type')} on {g.label}", f"GET /nodes/{g.node}/tasks/{upid}/log",
                         about, partial(client.task_log, g.node, upid))
        tail = [line for line in (log or []) if line][-3:]
        items.obs.append(Observation(
            tool=TOOL, query=f"GET /nodes/{g.node}/tasks/{t['upid']}/log", component=g.label, signal="log",
            anomalous=True, about=about,
            excerpt=f"task {t.get('type')} on {g.label} failed at {_when(t.get('starttime'))} ({t.get('user')}): "
                    f"{t.get('status')}; log: {' | '.join(tail)}"[:400]))
    if tasks and not failed:
        items.obs.append(Observation(tool=TOOL, query=f"GET /nodes/{g.node}/tasks?vmid={g.vmid}", component=g.label,
                                     about=about, excerpt=f"last {len(tasks)} tasks on {g.label} all ended OK "
                                                          f"(latest: {tasks[0].get('type')} by {tasks[0].get('user')})"))


def _node_observations(client: ProxmoxClient, node: str, focus_storage: str | None, items: _Items) -> None:
    about = {"node": node}
    st = items.read(f"the status of node {node}", f"GET /nodes/{node}/status", about, lambda: client.node_status(node))
    if st is not None:
        cpu = float(st.get("cpu") or 0.0)
        memory = st.get("memory") or {}
        mem = (float(memory["used"]) / float(memory["total"])) if memory.get("total") else None
        items.obs.append(Observation(
            tool=TOOL, query=f"GET /nodes/{node}/status", component=node, signal="state", value=cpu, about=about,
            anomalous=cpu >= 0.9 or (mem or 0) >= 0.9 or float(st.get("wait") or 0) >= 0.2,
            excerpt=(f"node {node}: cpu {_pct(cpu)} of {(st.get('cpuinfo') or {}).get('cpus', '?')} cpus, io wait "
                     f"{_pct(st.get('wait'))}, load {', '.join(map(str, st.get('loadavg') or []))}, memory "
                     f"{_pct(mem)}, {_uptime(st.get('uptime'))}, {st.get('pveversion', '')}")))
    storages = items.read(f"the storages of node {node}", f"GET /nodes/{node}/storage", about,
                          lambda: client.storage(node))
    for s in storages or []:
        frac = float(s.get("used_fraction") or (s["used"] / s["total"] if s.get("total") else 0.0))
        if frac >= 0.8 or s.get("storage") == focus_storage:
            items.obs.append(Observation(
                tool=TOOL, query=f"GET /nodes/{node}/storage", component=f"{s.get('storage')}@{node}",
                signal="state", value=frac, anomalous=frac >= 0.8 or not s.get("active", 1), about=about,
                excerpt=(f"storage {s.get('storage')} ({s.get('type')}) on {node}: {_pct(frac)} used, "
                         f"{_gib(s.get('avail'))} free of {_gib(s.get('total'))}"
                         f"{'' if s.get('active', 1) else ', INACTIVE'}")))


# A resource above this share of its limit for at least SUSTAINED (every RRD point of it) is saturated.
SATURATED = 0.9
SUSTAINED = timedelta(minutes=10)


def sustained_readings(series: list[Any], start: datetime, end: datetime, about_of: Callable[[Any], dict[str, str]],
                       ) -> list[Observation]:
    """CPU or memory of a guest or node at or above SATURATED through the last SUSTAINED of the window
    (every one-minute RRD point): what a resize or a reboot needs, not a single spike."""
    out = []
    for s in series:
        if not re.search(r"_(cpu_ratio|memory_used_ratio)$", s.metric):
            continue
        pts = [(t, v) for t, v in s.points if start <= t <= end]
        recent = [(t, v) for t, v in pts if t >= end - SUSTAINED]
        if len(recent) < SUSTAINED.total_seconds() // 60 - 1 or not all(v >= SATURATED for _, v in recent):
            continue
        over = 0
        for _, v in reversed(pts):
            if v < SATURATED:
                break
            over += 1
        before = [v for t, v in s.points if t < end - timedelta(minutes=over)]
        what = "memory" if "memory" in s.metric else "CPU"
        label = s.labels.get("service", "")
        sel = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()) if k in ("node", "type", "vmid", "service"))
        out.append(Observation(
            tool="proxmox_rrd", query=f"{s.metric}{{{sel}}}", component=label, signal="metric", anomalous=True,
            value=round(sorted(v for _, v in recent)[len(recent) // 2], 4), about=about_of(s),
            baseline=round(sorted(before)[len(before) // 2], 4) if before else None,
            excerpt=(f"{label} {what} saturated: at or above {SATURATED:.0%} for the last {over} min "
                     f"(sustained; PVE RRD {s.metric})")))
    return out


def _rrd_observations(suspects: list[Any], keep: set[str], about: dict[str, dict[str, str]]) -> list[Observation]:
    obs = []
    for s in suspects:
        if s.component not in keep:
            continue
        for a in s.anomalies[:3]:
            obs.append(Observation(
                tool="proxmox_rrd", query=a.query, component=s.component, signal="metric", anomalous=True,
                value=a.value, baseline=a.baseline, score=a.score, about=about.get(s.component, {}),
                excerpt=(f"{a.metric} {a.direction} to {a.value:.4g} (baseline {a.baseline:.4g}, anomaly score "
                         f"{a.score:.1f}; PVE RRD)")))
    return obs


def _investigate(client: ProxmoxClient, labels: dict[str, str], start: datetime, end: datetime,
                 baseline_start: datetime) -> tuple[PveTarget | None, list[Observation], list[Any]]:
    target = resolve(client, labels)
    if target is None:
        return None, [], []
    items = _Items()
    series: list[Any] = []
    timeframe = timeframe_for(end - start)
    if target.guest is not None:
        g = target.guest
        _guest_observations(client, g, items)
        series += items.read(f"the RRD series of guest {g.label}", f"GET {g.path}/rrddata", guest_about(g),
                             lambda: guest_series(client, g, timeframe)) or []
    if target.node is not None:
        node = check_node(target.node)
        _node_observations(client, node, target.storage, items)
        series += items.read(f"the RRD series of node {node}", f"GET /nodes/{node}/rrddata", {"node": node},
                             lambda: node_series(client, node, timeframe)) or []
    return target, items.obs, series


def _reboot_impact(client: ProxmoxClient, node: str) -> list[Observation]:
    items = _Items()
    imp = items.read(f"what a reboot of node {node} would take down", "GET /cluster/status", {"node": node},
                     lambda: node_reboot.impact(client, node))
    if imp is not None:
        items.obs.append(Observation(tool=TOOL, query="GET /cluster/status", component=node, signal="state",
                                     about={"node": node}, excerpt=imp.reading()[:600]))
    return items.obs


def _series_about(s: Any) -> dict[str, str]:
    labels = s.labels
    if "vmid" in labels:
        return {"vmid": labels["vmid"], "node": labels.get("node", ""), "host": labels.get("service", "")}
    return {"node": labels.get("node", "")}


async def investigate(client: ProxmoxClient, labels: dict[str, str], start: datetime, end: datetime,
                      baseline_start: datetime) -> ProxmoxFindings:
    """Observations and RRD suspects for an alert; `error` (one line) when PVE could not be read at all
    (which guest or node the alert is about could not be looked up)."""

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
        about = {s.labels.get("service", ""): _series_about(s) for s in series}
        obs += _rrd_observations(suspects, keep, about)
        sustained = sustained_readings(series, start, end, _series_about)
        obs += sustained
        node = target.node
        if node and (target.guest is None or any(o.about == {"node": node} for o in sustained)):
            # The alert is about the node, or the node itself is saturated: what a reboot would take down.
            obs += await asyncio.to_thread(_reboot_impact, client, node)
    return ProxmoxFindings(target=target, observations=obs, suspects=[s for s in suspects if s.anomalies])
