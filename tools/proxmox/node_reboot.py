"""Rebooting a PVE node: what it takes down, when it is refused, and watching the node come back.

A node reboot is the last resort for a node whose CPU or memory stayed saturated (host-level load its
guests do not explain: a runaway host process, a leak in a kernel module): it clears whatever burned on
the host, and it takes every guest on the node down while it boots. So it is always a human's decision,
and the approver is shown which guests run there, which of them start again at boot (`onboot`), and
which stopped guests PVE will start at boot although someone stopped them.

It is refused, and nothing is sent, when:

- a guest on the node is HA-managed: the HA manager would fence, relocate or restart it, its decisions;
- the cluster is not quorate now, or the node is the only online member of a cluster;
- the members left online while it reboots would be no majority of the cluster (one vote per node is
  assumed: the API shows neither votes nor a QDevice), e.g. either node of a two-node cluster.

A standalone node (no cluster) may be rebooted: the approver is told that the PVE API and every guest
are gone until it is back. PVE answers the reboot call with null (no task); `watch` then reads the
cluster's view of the node until it has gone down and come back online (or its uptime restarted), for
at most `PROXMOX_NODE_REBOOT_TIMEOUT`. Nothing undoes a reboot.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import BaseModel, Field

from tools.proxmox.client import GuestRef, ProxmoxClient, ProxmoxError, check_node
from tools.toolset import Outcome

_HA_SID = re.compile(r"^(?:vm|ct):(?P<vmid>\d+)$")


class GuestOnNode(BaseModel):
    vmid: int
    name: str
    kind: str
    status: str
    ha: bool = False
    onboot: bool | None = None  # None: not read

    @property
    def label(self) -> str:
        return f"{self.name or self.vmid} ({self.kind}/{self.vmid})"


class NodeImpact(BaseModel):
    """What a reboot of `node` would take down, and the cluster around it."""

    node: str
    known: bool  # the cluster knows this node
    online: bool
    uptime: int = 0
    guests: list[GuestOnNode] = Field(default_factory=list)
    cluster: str = ""  # "" : a standalone node
    members: int = 1
    online_members: int = 1
    quorate: bool = True

    @property
    def running(self) -> list[GuestOnNode]:
        return [g for g in self.guests if g.status == "running"]

    @property
    def ha_guests(self) -> list[GuestOnNode]:
        return [g for g in self.guests if g.ha]

    def quorum_refusal(self) -> str:
        if not self.cluster:
            return ""
        need = self.members // 2 + 1
        if not self.quorate:
            return f"cluster {self.cluster} is not quorate now ({self.online_members} of {self.members} nodes online)"
        if self.online_members <= 1:
            return f"{self.node} is the only online node of cluster {self.cluster}"
        left = self.online_members - (1 if self.online else 0)
        if left < need:
            return (f"rebooting it would leave {left} of {self.members} nodes of cluster {self.cluster} online, "
                    f"below quorum ({need}; one vote per node assumed)")
        return ""

    def refusals(self) -> list[str]:
        out = []
        if not self.known:
            out.append(f"no node {self.node} in the cluster")
        elif not self.online:
            out.append(f"node {self.node} is not online")
        if self.ha_guests:
            out.append(f"HA-managed guests run on {self.node}: {', '.join(g.label for g in self.ha_guests)} (the HA "
                       "manager decides about them, not aiops)")
        quorum = self.quorum_refusal()
        if quorum:
            out.append(quorum)
        return out

    def guests_line(self) -> str:
        if not self.running:
            return f"no guest runs on {self.node}"

        def one(g: GuestOnNode) -> str:
            boot = "" if g.onboot is None else ", starts at boot" if g.onboot else \
                ", does NOT start at boot: stays stopped"
            return f"{g.label}{boot}"
        line = f"takes down the {len(self.running)} guest(s) running on {self.node}: " + "; ".join(map(one, self.running))
        woken = [g for g in self.guests if g.status == "stopped" and g.onboot]
        if woken:  # PVE starts every onboot guest at boot, also one someone stopped
            line += f"; stopped now but started at boot: {', '.join(g.label for g in woken)}"
        return line

    def cluster_line(self) -> str:
        if not self.cluster:
            return (f"{self.node} is a standalone node: the PVE API and every guest are down until it is back")
        quorum = self.quorum_refusal()
        return (f"cluster {self.cluster} {'quorate' if self.quorate else 'NOT quorate'}, {self.online_members} of "
                f"{self.members} nodes online" + (f": {quorum}" if quorum else
                                                   f", {self.online_members - 1} stay online: a reboot keeps quorum"))

    def reading(self) -> str:
        """One line for the evidence (what the fit's forbid patterns read)."""
        ha = ", ".join(g.label for g in self.ha_guests) or "none"
        return (f"node {self.node} reboot impact: HA-managed guests: {ha}; {self.cluster_line()}; "
                f"{self.guests_line()}")


def impact(client: ProxmoxClient, node: str, *, onboot: bool = False) -> NodeImpact:
    """Read the cluster: the node, its guests (with `onboot`, one config read per guest), what
    the HA manager owns, and the cluster's membership and quorum."""
    node = check_node(node)
    row = next((r for r in client.cluster_resources("node") if r.get("node") == node), None)
    ha = {int(m["vmid"]) for r in client.ha_resources() if (m := _HA_SID.match(str(r.get("sid", ""))))}
    guests = [GuestOnNode(vmid=int(r["vmid"]), name=str(r.get("name") or ""), kind=str(r["type"]),
                          status=str(r.get("status", "")), ha=int(r["vmid"]) in ha)
              for r in client.cluster_resources("vm") if r.get("node") == node and r.get("type") in ("qemu", "lxc")
              and not r.get("template")]
    if onboot:
        for g in guests:
            if g.status in ("running", "stopped"):
                cfg = client.guest_config(GuestRef(node=node, kind=g.kind, vmid=g.vmid))  # type: ignore[arg-type]
                g.onboot = str(cfg.get("onboot", "0")) in ("1", "true")
    status = client.cluster_status()
    head = next((r for r in status if r.get("type") == "cluster"), None)
    members = [r for r in status if r.get("type") == "node"]
    return NodeImpact(node=node, known=row is not None, online=bool(row and row.get("status") == "online"),
                      uptime=int((row or {}).get("uptime") or 0), guests=guests,
                      cluster=str(head.get("name", "")) if head else "",
                      members=int(head.get("nodes", len(members))) if head else 1,
                      online_members=sum(int(r.get("online", 0)) for r in members) if head else 1,
                      quorate=bool(int(head.get("quorate", 0))) if head else True)


def describe(node: str) -> str:
    return f"POST /api2/json/nodes/{node}/status command=reboot"


def preflight(client: ProxmoxClient, node: str) -> str:
    imp = impact(client, node, onboot=True)
    refusals = imp.refusals()
    if refusals:
        return f"REFUSED: {'; '.join(refusals)}"
    return "; ".join([describe(node), f"node {node} is online (up {imp.uptime // 3600} h)", imp.guests_line(),
                      "no HA-managed guests", imp.cluster_line(), "nothing undoes a reboot"])


class Watched(BaseModel):
    back: bool
    seen_down: bool
    seconds: float
    uptime: int = 0


def watch(client: ProxmoxClient, node: str, uptime_before: int, timeout: float) -> Watched:
    """Read the cluster's view of the node until it went down and is online again (or is online with an
    uptime that restarted: it went down between two reads), for at most `timeout` seconds. A failed read
    is a node not back yet (PROXMOX_HOST may be the node that is rebooting)."""
    started = time.monotonic()
    delay, seen_down = min(0.05, client.poll_interval), False
    while True:
        row: dict[str, Any] | None = None
        try:
            row = next((r for r in client.cluster_resources("node") if r.get("node") == node), None)
        except ProxmoxError:
            seen_down = True
        online = bool(row and row.get("status") == "online")
        seen_down = seen_down or not online
        uptime = int((row or {}).get("uptime") or 0)
        if online and (seen_down or uptime < uptime_before):
            return Watched(back=True, seen_down=True, seconds=round(time.monotonic() - started, 3), uptime=uptime)
        if time.monotonic() - started >= timeout:
            return Watched(back=False, seen_down=seen_down, seconds=round(time.monotonic() - started, 3))
        time.sleep(delay)
        delay = min(delay * 2, client.poll_interval)


def execute(client: ProxmoxClient, node: str) -> Outcome:
    """Check again (the cluster may have changed since approval), reboot, and watch the node come back."""
    details: dict[str, str | int | float | bool] = {"node": node, "kind": "node"}
    try:
        imp = impact(client, node, onboot=True)
        refusals = imp.refusals()
        if refusals:
            return Outcome(status="failed", output=f"refused: {'; '.join(refusals)}", details=details)
        back_at_boot = [g for g in imp.running if g.onboot]
        details.update(guests_running=",".join(str(g.vmid) for g in imp.running),
                       guests_onboot=",".join(str(g.vmid) for g in back_at_boot))
        client.node_reboot(node)
    except ProxmoxError as exc:
        return Outcome(status="failed", output=str(exc), details=details)
    w = watch(client, node, imp.uptime, client.config.node_reboot_timeout)
    details.update(seconds=w.seconds)
    if not w.back:
        seen = "went down but" if w.seen_down else "was never seen going down and"
        return Outcome(status="failed", details=details,
                       output=f"node {node} {seen} is not back online after {w.seconds:.0f} s "
                              "(PROXMOX_NODE_REBOOT_TIMEOUT)")
    return Outcome(status="ok", details=details,
                   output=f"node {node} rebooted: back online after {w.seconds:.1f} s (uptime {w.uptime} s); "
                          f"{len(imp.running)} guest(s) ran there, {len(back_at_boot)} start at boot")
