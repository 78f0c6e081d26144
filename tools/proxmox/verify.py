"""Verification after a Proxmox action: read the guest's (or node's) status and its RRD metrics again.

A guest check passes when the guest is in the state the action meant (running after a start/reboot/
resize, stopped after a stop/shutdown) and is no longer saturated; a node check after a node reboot
passes when the node is online, below 90% CPU and memory, and the guests that start at boot run again; an RRD check re-reads the series
an evidence item cited and passes when its latest samples are back within half the distance between
the anomalous value and the baseline (the rule of every other metric check), or past the baseline in
the good direction (a resize spreads the same demand over more cores or memory).
"""

from __future__ import annotations

import re
import statistics

from core.models import Evidence, ExecutionResult, VerificationCheck
from tools.metric_types import back_to_baseline
from tools.proxmox.client import GuestRef, ProxmoxClient, ProxmoxError
from tools.proxmox.metrics import reread

STOPPING = {"proxmox_guest_stop", "proxmox_guest_shutdown"}
_STATUS_QUERY = re.compile(r"^GET /nodes/(?P<node>[A-Za-z0-9-]+)/(?P<kind>qemu|lxc)/(?P<vmid>\d+)/status/current$")


def check_metric(client: ProxmoxClient, ev: Evidence, points: int = 5) -> VerificationCheck:
    try:
        series = reread(client, ev.query)
    except (ProxmoxError, ValueError) as exc:
        return VerificationCheck(evidence_id=ev.id, query=ev.query, before=ev.value, recovered=False,
                                 note=f"cannot read PVE: {exc}"[:300])
    values = series.values()[-points:] if series else []
    if not values or ev.value is None or ev.baseline is None:
        return VerificationCheck(evidence_id=ev.id, query=ev.query, before=ev.value, recovered=False,
                                 note="no RRD data after the change")
    after = statistics.median(values)
    recovered = back_to_baseline(ev.value, ev.baseline, after)
    return VerificationCheck(evidence_id=ev.id, query=ev.query, before=ev.value, after=round(after, 4),
                             recovered=recovered, note=f"PVE RRD: baseline {ev.baseline:.4g}, during incident "
                                                       f"{ev.value:.4g}, now {after:.4g} (last {len(values)} samples)")


def check_status(client: ProxmoxClient, ev: Evidence, executions: list[ExecutionResult]) -> VerificationCheck:
    m = _STATUS_QUERY.match(ev.query)
    if m is None:
        return VerificationCheck(evidence_id=ev.id, query=ev.query, recovered=False, note="not a guest status query")

    ref = GuestRef(node=m["node"], kind=m["kind"], vmid=int(m["vmid"]))  # type: ignore[arg-type]
    want = "stopped" if any(e.action in STOPPING and e.status == "ok" for e in executions) else "running"
    try:
        st = client.guest_status(ref)
    except ProxmoxError as exc:
        return VerificationCheck(evidence_id=ev.id, query=ev.query, recovered=False, note=f"cannot read PVE: {exc}"[:300])
    cpu = float(st.get("cpu") or 0.0)
    mem = float(st["mem"]) / float(st["maxmem"]) if st.get("maxmem") else 0.0
    ok = st.get("status") == want and (want == "stopped" or (cpu < 0.9 and mem < 0.9))
    return VerificationCheck(evidence_id=ev.id, query=ev.query, before=ev.value, after=round(cpu, 4), recovered=ok,
                             note=f"guest {st.get('name', ref.vmid)} is {st.get('status')} (wanted {want}), "
                                  f"cpu {cpu:.0%}, memory {mem:.0%}")


def check_node(client: ProxmoxClient, node: str, onboot_vmids: str) -> VerificationCheck:
    query = f"GET /nodes/{node}/status"
    try:
        row = next((r for r in client.cluster_resources("node") if r.get("node") == node), None)
        st = client.node_status(node) if row and row.get("status") == "online" else {}
        vms = {str(r.get("vmid")): r for r in client.cluster_resources("vm") if r.get("node") == node}
    except ProxmoxError as exc:
        return VerificationCheck(evidence_id=f"node:{node}", query=query, recovered=False,
                                 note=f"cannot read PVE: {exc}"[:300])
    if not st:
        return VerificationCheck(evidence_id=f"node:{node}", query=query, recovered=False,
                                 note=f"node {node} is {(row or {}).get('status', 'unknown to the cluster')}")
    cpu = float(st.get("cpu") or 0.0)
    memory = st.get("memory") or {}
    mem = float(memory["used"]) / float(memory["total"]) if memory.get("total") else 0.0
    want = [v for v in onboot_vmids.split(",") if v]
    down = [f"{vms[v].get('name') or v} ({v})" if v in vms else v for v in want
            if vms.get(v, {}).get("status") != "running"]
    ok = cpu < 0.9 and mem < 0.9 and not down
    return VerificationCheck(evidence_id=f"node:{node}", query=query, after=round(cpu, 4), recovered=ok,
                             note=f"node {node} is online (up {int(st.get('uptime') or 0)} s), cpu {cpu:.0%}, "
                                  f"memory {mem:.0%}; guests that start at boot running: {len(want) - len(down)} of "
                                  f"{len(want)}" + (f" (not: {', '.join(down)})" if down else ""))
