"""The Proxmox VE toolset: guests and nodes of a PVE cluster, through its API with a token.

Settings `PROXMOX_*` (`settings.py`); client `client.py`; read tools `tools.py`; evidence
`evidence.py` (status, config, task history, HA ownership, storage and RRD series of the alert's guest
and its node, one item at a time); execution `actions.py` (a UPID-tracked task per action, snapshot
first where risky); verification `verify.py`. The entries below say where each action fits:

- a guest that stopped unexpectedly (stopped now, its last start ended OK, no stop/shutdown/suspend task
  by anyone since, not HA-managed) is started; within its bounds a policy may do that without a human.
  A guest someone stopped is at most proposed; one the HA manager owns never;
- a guest whose CPU or memory stayed saturated for the sustained window gets a resize within
  `PROXMOX_MAX_*` (always a human), or a reboot (always a human);
- a node whose own CPU or memory stayed saturated for the sustained window (its node RRD series) gets a
  node reboot (always a human; `node_reboot.py`): the approver sees which guests run there and which
  start again at boot; never where HA-managed guests run or where the reboot would cost the cluster its
  quorum. The node comes from the alert's labels (`id="node/pve-01"`, `node`, `pve_node`) or, when they
  name none, from readings of this incident about the node itself. Nothing undoes it.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from core.models import Action, Category, Evidence, ExecutionResult, Risk, VerificationCheck
from tools.catalog_entry import AutoBounds, CatalogEntry
from tools.fit import HARDWARE, STORAGE_CLUSTER, EvidenceNeed, Fit
from tools.params import Param
from tools.proxmox import actions
from tools.proxmox.client import MAX_VMID, MIN_VMID, NODE_NAME, SNAPSHOT_NAME, ProxmoxClient
from tools.proxmox.settings import ProxmoxSettings
from tools.proxmox.tools import make_proxmox_tools
from tools.proxmox.verify import check_metric, check_node, check_status
from tools.result import UNREAD, Observation
from tools.toolset import Candidate, Outcome, PlanContext, ReadContext, Reading, Toolset, bound

KIND = "proxmox_vm"
_CONFIG = re.compile(r"^(?P<name>\S+) config: (?P<cores>\d+) cores x \d+ socket\(s\), (?P<memory>\d+) MiB")


def _guest_params() -> dict[str, Param]:
    return {"node": Param(description="PVE node the guest is on (host name, e.g. pve-01)",
                          pattern=NODE_NAME.pattern[1:-1], names="node"),
            "vmid": Param(description="guest id", type="int", minimum=MIN_VMID, maximum=MAX_VMID, names="vmid")}


def _saturation(what: str) -> EvidenceNeed:
    return EvidenceNeed(name=f"sustained {what} saturation", signals=["metric"], about=["vmid"],
                        description=f"the guest's {what} at or above 90% through the sustained window (PVE RRD)",
                        pattern=rf"{what} saturated")


_ALIVE: list[Category] = ["availability", "service_down"]

# The node's own series (`pve_node_*`, not a guest's on it), saturated through the sustained window.
NODE_SATURATION = EvidenceNeed(
    name="sustained node saturation", signals=["metric"], about=["node"],
    description="the node's own CPU or memory at or above 90% through the sustained window (PVE node RRD)",
    pattern=r"pve_node_(cpu_ratio|memory_used_ratio)\{[^}]*\} .*saturated: .*\(sustained")
NODE_HA = EvidenceNeed(name="a node where HA-managed guests run", signals=["state"], anomalous=False, about=["node"],
                       description="HA-managed guests on the node", pattern=r"reboot impact: HA-managed guests: (?!none)")
NODE_QUORUM = EvidenceNeed(name="a reboot that would cost the cluster its quorum", signals=["state"], anomalous=False,
                           about=["node"], description="the cluster would lose (or has no) quorum",
                           pattern=r"reboot impact: .*(not quorate|the only online node|below quorum)")


def entries() -> list[CatalogEntry]:
    guest = _guest_params
    snap = {"snapname": Param(description="snapshot name: a letter, then letters, digits, _ or -",
                              pattern=SNAPSHOT_NAME.pattern[1:-1])}
    operator_only = Fit()  # operator tools: never proposed by the loop itself
    return [
        CatalogEntry(
            name="proxmox_guest_start", kind=KIND, risk=Risk.MEDIUM, parameters=guest(), target_kind="node",
            description="Start a stopped Proxmox VE guest (VM or container)",
            verification="the guest is running and its CPU/memory look normal", inverse="proxmox_guest_shutdown",
            bounds=AutoBounds(note="none beyond the fit: only a guest PVE shows stopped unexpectedly, never one "
                                   "someone stopped or the HA manager owns"),
            fit=Fit(categories=_ALIVE, domains=["virtualization", "host", "other"],
                    requires=[EvidenceNeed(name="stopped unexpectedly", signals=["state"], about=["vmid"],
                                           description="the guest stopped with no stop/shutdown task since its "
                                                       "last successful start (PVE task history)",
                                           pattern=r"stopped unexpectedly")],
                    forbid=[EvidenceNeed(name="a guest the HA manager owns", signals=["state"], anomalous=False,
                                         about=["vmid"], description="HA-managed", pattern=r"is HA-managed")],
                    never=[HARDWARE, STORAGE_CLUSTER], suggest_without_evidence=_ALIVE)),
        CatalogEntry(
            name="proxmox_guest_shutdown", kind=KIND, risk=Risk.HIGH, parameters=guest(), target_kind="node",
            description="Cleanly shut down a Proxmox VE guest (ACPI / container shutdown; snapshot first when its "
                        "storage allows)", verification="the guest is stopped", inverse="proxmox_guest_start",
            fit=operator_only),
        CatalogEntry(
            name="proxmox_vm_reboot", kind=KIND, risk=Risk.HIGH, parameters=guest(), target_kind="node",
            description="Reboot a Proxmox VE guest (full outage of the guest while it boots; snapshot first when "
                        "its storage allows)",
            verification="the guest is running and its CPU/memory return to baseline",
            # A saturated guest the alert names by vmid may be put before a human (high risk, never automatic).
            fit=Fit(categories=["cpu", "memory", "latency", "errors", "anomaly"], domains=["host", "virtualization"],
                    requires=[EvidenceNeed(name="guest saturation", signals=["metric", "state"], about=["vmid"],
                                           description="an anomalous CPU/memory/latency series of the guest",
                                           pattern=r"cpu|mem|latency|load|proxmox")],
                    never=[HARDWARE, STORAGE_CLUSTER], always_human=True, suggest_without_evidence=["cpu", "memory"])),
        CatalogEntry(
            name="proxmox_node_reboot", kind=KIND, risk=Risk.HIGH, target_kind="node",
            parameters={"node": Param(description="PVE node to reboot (host name, e.g. pve-01)",
                                      pattern=NODE_NAME.pattern[1:-1], names="node")},
            description="Reboot a Proxmox VE node (every guest on it is down while it boots; those marked onboot "
                        "start again; refused where HA-managed guests run or the cluster would lose quorum)",
            verification="the node is back online and its CPU/memory pressure is down",
            # No bounds and no inverse: a human decides every node reboot, and nothing undoes one.
            fit=Fit(categories=["cpu", "memory"], domains=["virtualization", "host", "other"],
                    requires=[NODE_SATURATION], forbid=[NODE_HA, NODE_QUORUM],
                    never=[HARDWARE, STORAGE_CLUSTER], always_human=True)),
        CatalogEntry(
            name="proxmox_guest_stop", kind=KIND, risk=Risk.HIGH, parameters=guest(), target_kind="node",
            description="Hard-stop a hung Proxmox VE guest (like pulling the plug; snapshot first when its storage "
                        "allows)", verification="the guest is stopped", inverse="proxmox_guest_start",
            fit=operator_only),
        CatalogEntry(
            name="proxmox_snapshot_create", kind=KIND, risk=Risk.LOW, parameters={**guest(), **snap},
            target_kind="node", description="Take a snapshot of a Proxmox VE guest (no change to the running guest)",
            verification="the snapshot exists", fit=operator_only),
        CatalogEntry(
            name="proxmox_snapshot_rollback", kind=KIND, risk=Risk.HIGH, target_kind="node",
            parameters={**guest(), "snapname": Param(description="existing snapshot to roll back to",
                                                     pattern=SNAPSHOT_NAME.pattern[1:-1])},
            description="Roll a Proxmox VE guest back to a snapshot (loses changes since; the current state is "
                        "snapshotted first when its storage allows)",
            verification="the guest runs the snapshot's configuration", fit=operator_only),
        CatalogEntry(
            name="proxmox_guest_set_memory", kind=KIND, risk=Risk.MEDIUM, target_kind="node",
            parameters={**guest(), "memory_mb": Param(
                type="int", minimum=actions.MIN_MEMORY_MB, maximum=actions.MAX_MEMORY_MB,
                description="new memory in MiB (up to PROXMOX_MAX_MEMORY_MB, at most double/half the current)")},
            description="Resize a Proxmox VE guest's memory within limits (qemu: applied live with hotplug, else "
                        "at next boot)",
            verification="the guest's configured memory is the new size and memory pressure eases",
            fit=Fit(categories=["memory"], domains=["virtualization", "host", "other"], requires=[_saturation("memory")],
                    never=[HARDWARE, STORAGE_CLUSTER], always_human=True)),
        CatalogEntry(
            name="proxmox_guest_set_cores", kind=KIND, risk=Risk.MEDIUM, target_kind="node",
            parameters={**guest(), "cores": Param(
                type="int", minimum=1, maximum=actions.MAX_CORES,
                description="new core count (up to PROXMOX_MAX_CORES and the node's CPUs, at most double/half the "
                            "current)")},
            description="Resize a Proxmox VE guest's CPU cores within limits",
            verification="the guest's configured cores are the new count and CPU saturation eases",
            fit=Fit(categories=["cpu"], domains=["virtualization", "host", "other"], requires=[_saturation("CPU")],
                    never=[HARDWARE, STORAGE_CLUSTER], always_human=True)),
    ]


class ProxmoxToolset(Toolset):
    name = "proxmox"
    folder = Path(__file__).parent
    settings_model = ProxmoxSettings

    def entries(self) -> list[CatalogEntry]:
        return entries()

    def _entry(self, name: str) -> CatalogEntry:
        return next(e for e in self.entries() if e.name == name)

    def connect(self, settings: Any) -> ProxmoxClient | None:
        return ProxmoxClient.from_settings(self.settings(settings))

    def read_tools(self, client: ProxmoxClient, *, now: Any = None, call_graph: Any = None) -> list[Any]:
        return make_proxmox_tools(client)

    def names(self, labels: dict[str, str]) -> dict[str, set[str]]:
        from tools.proxmox.evidence import hints

        h = hints(labels)
        return {k: {h[k]} for k in ("vmid", "node") if h.get(k)}

    async def investigate(self, client: ProxmoxClient, ctx: ReadContext) -> Reading:
        from tools.proxmox.evidence import investigate, looks_like_pve

        pve = await investigate(client, ctx.labels, ctx.start, ctx.end, ctx.baseline_start)
        obs = list(pve.observations)
        if pve.error and looks_like_pve(ctx.labels):
            obs.insert(0, Observation(tool="proxmox", query="GET /cluster/resources", component=ctx.target,
                                      signal="state", anomalous=False,
                                      excerpt=f"{UNREAD} Proxmox VE (which guest or node this is): {pve.error}"[:400]))
        return Reading(observations=obs, suspects=pve.suspects)

    # ------------------------------------------------------------------------------ binding --
    def candidates(self, ctx: PlanContext) -> list[Candidate]:
        """Each guest the incident names or a PVE reading is about, with the guest actions that could
        apply; resizes double what the guest's own configuration reading shows, within PROXMOX_MAX_*."""
        limits = self.settings(ctx.settings)
        out: list[Candidate] = []
        for node, vmid, config in _guests(ctx):
            params = {"node": node, "vmid": vmid}
            out += bound(self._entry("proxmox_guest_start"), node, params,
                         f"guest {vmid} on {node} is stopped; starting it brings the service back")
            if config is not None:
                cores, memory = int(config["cores"]), int(config["memory"])
                if cores < limits.PROXMOX_MAX_CORES:
                    out += bound(self._entry("proxmox_guest_set_cores"), node,
                                 {**params, "cores": min(cores * 2, limits.PROXMOX_MAX_CORES)},
                                 f"guest {vmid} ({config['name']}) has used all its {cores} cores for the sustained "
                                 "window; more cores ease it without an outage", score=1.0)
                if memory < limits.PROXMOX_MAX_MEMORY_MB:
                    out += bound(self._entry("proxmox_guest_set_memory"), node,
                                 {**params, "memory_mb": min(memory * 2, limits.PROXMOX_MAX_MEMORY_MB)},
                                 f"guest {vmid} ({config['name']}) has used its {memory} MiB for the sustained "
                                 "window; more memory eases it", score=1.0)
            out += bound(self._entry("proxmox_vm_reboot"), node, params,
                         f"guest {vmid} on {node} is saturated and no single service explains it; a reboot is the "
                         "remaining fix (high risk: full outage while it boots)")
        for node in _nodes(ctx):
            out += bound(self._entry("proxmox_node_reboot"), node, {"node": node},
                         f"node {node} has been saturated for the sustained window by load on the host itself; a "
                         "reboot clears it (high risk: every guest on it is down while it boots)")
        return out

    # ---------------------------------------------------------------------------- execution --
    def preflight(self, action: Action, client: ProxmoxClient | None) -> str:
        return actions.preflight(action, client)

    def execute(self, action: Action, client: ProxmoxClient | None, *, plan_id: str = "") -> Outcome:
        return actions.execute(action, client, plan_id=plan_id)

    async def verify(self, client: ProxmoxClient | None, evidence: list[Evidence], executions: list[ExecutionResult],
                     component: str) -> list[VerificationCheck]:
        """After a change to a guest, read that guest again: its status (running after a start, reboot or
        resize; stopped after a stop or shutdown) and the RRD series the evidence cited about it."""
        if client is None:
            return []

        checks = []
        for ex in executions:
            if ex.status == "ok" and ex.details.get("kind") == "node":
                checks += await _verify_node(client, evidence, ex)
                continue
            if ex.status != "ok" or not ex.details.get("vmid") or not ex.details.get("kind"):
                continue
            vmid, node, kind = str(ex.details["vmid"]), str(ex.details["node"]), str(ex.details["kind"])
            mine = [e for e in evidence if e.about.get("vmid") == vmid and e.anomalous]
            status = next((e for e in evidence if e.about.get("vmid") == vmid and e.tool == "proxmox"
                           and e.query.endswith("/status/current")), None)
            status = status or Evidence(id=f"exec:{ex.action}", tool="proxmox", excerpt="", signal="state",
                                        query=f"GET /nodes/{node}/{kind}/{vmid}/status/current")
            checks.append(await asyncio.to_thread(check_status, client, status, executions))
            top = max((e.score or 0.0 for e in mine if e.signal == "metric"), default=0.0)
            for ev in mine:
                if ev.tool == "proxmox_rrd" and ev.signal == "metric" and (ev.score or 0.0) >= 0.5 * top:
                    checks.append(await asyncio.to_thread(check_metric, client, ev))
        return checks

    def inverse(self, action: Action, result: ExecutionResult | None) -> Action | None:
        if result is not None and result.details.get("snapshot"):
            # The change was preceded by a snapshot: rolling back to it undoes exactly this change.
            params = {k: action.parameters[k] for k in ("node", "vmid")}
            return self._entry("proxmox_snapshot_rollback").action(action.target, **params,
                                                                   snapname=str(result.details["snapshot"]))
        return super().inverse(action, result)


async def _verify_node(client: ProxmoxClient, evidence: list[Evidence], ex: ExecutionResult) -> list[VerificationCheck]:
    """After a node reboot: the node online again with its pressure down, the guests that start at boot
    running, and the node series the evidence cited read again."""

    node = str(ex.details["node"])
    checks = [await asyncio.to_thread(check_node, client, node, str(ex.details.get("guests_onboot", "")))]
    for ev in evidence:
        if (ev.tool == "proxmox_rrd" and ev.signal == "metric" and ev.anomalous and ev.about.get("node") == node
                and not ev.about.get("vmid") and ev.query.startswith("pve_node_")):
            checks.append(await asyncio.to_thread(check_metric, client, ev))
    return checks


def _nodes(ctx: PlanContext) -> list[str]:
    """The nodes a node action may act on: those the alert's labels name; when they name none, those
    PVE readings of this incident are about (the node itself, not a guest on it)."""
    named = ctx.objects.named.get("node", set())
    if named:
        return sorted(named)
    found: list[str] = []
    for ev in ctx.evidence:
        node = ev.about.get("node")
        if (ev.tool.startswith("proxmox") and node and not ev.about.get("vmid") and not ev.excerpt.startswith(UNREAD)
                and node not in found):
            found.append(node)
    return found


def _guests(ctx: PlanContext) -> list[tuple[str, str, dict[str, str] | None]]:
    """(node, vmid, its configuration reading or None): guests PVE readings are about, then the guest the
    alert names by vmid and node."""
    found: dict[tuple[str, str], dict[str, str] | None] = {}
    for ev in ctx.evidence:
        vmid, node = ev.about.get("vmid"), ev.about.get("node")
        if ev.tool.startswith("proxmox") and vmid and node and not ev.excerpt.startswith(UNREAD):
            m = _CONFIG.match(ev.excerpt)
            if m or (node, vmid) not in found:
                found[(node, vmid)] = m.groupdict() if m else found.get((node, vmid))
    named_vmids, named_nodes = ctx.objects.named.get("vmid", set()), ctx.objects.named.get("node", set())
    if len(named_vmids) == 1 and len(named_nodes) == 1:
        found.setdefault((next(iter(named_nodes)), next(iter(named_vmids))), None)
    return [(node, vmid, cfg) for (node, vmid), cfg in found.items()]


TOOLSET = ProxmoxToolset()
