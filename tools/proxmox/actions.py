"""Proxmox VE catalog actions and how each one runs (a node reboot: `node_reboot.py`).

Every action names a guest by node and vmid (both validated strictly, and the guest must really be
on that node), starts one PVE task, waits on its UPID until the task stops and reports its exit
status: a task that PVE ran but that failed is a failed step, not a success. A risky (high-risk)
action first takes a snapshot of the guest when its storage supports snapshots (PVE's own
`feature?feature=snapshot` check), and says so; if that snapshot fails, the action does not run.
A resize stays within limits: the configured maximum (`PROXMOX_MAX_MEMORY_MB`, `PROXMOX_MAX_CORES`),
the node's own capacity, and at most doubling or halving what the guest has now.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from core.models import Action
from tools.proxmox import node_reboot
from tools.proxmox.client import (
    SNAPSHOT_NAME,
    GuestRef,
    ProxmoxClient,
    ProxmoxError,
    check_node,
    check_vmid,
)
from tools.toolset import Outcome

MIN_MEMORY_MB = 512
GROWTH = 2.0  # a resize at most doubles (or halves) what the guest has


class Op(BaseModel):
    """What a catalog entry does on PVE."""

    kind: Literal["power", "snapshot", "rollback", "memory", "cores"]
    power: str = ""  # start | shutdown | reboot | stop
    snapshot_first: bool = False


OPS: dict[str, Op] = {
    "proxmox_guest_start": Op(kind="power", power="start"),
    "proxmox_guest_shutdown": Op(kind="power", power="shutdown", snapshot_first=True),
    "proxmox_vm_reboot": Op(kind="power", power="reboot", snapshot_first=True),
    "proxmox_guest_stop": Op(kind="power", power="stop", snapshot_first=True),
    "proxmox_snapshot_create": Op(kind="snapshot"),
    "proxmox_snapshot_rollback": Op(kind="rollback", snapshot_first=True),
    "proxmox_guest_set_memory": Op(kind="memory"),
    "proxmox_guest_set_cores": Op(kind="cores"),
}

MAX_MEMORY_MB, MAX_CORES = 4 * 1024 * 1024, 512  # the catalog's bounds; settings and the node narrow them
NODE_REBOOT = "proxmox_node_reboot"  # acts on a node, not a guest: tools/proxmox/node_reboot.py


class Refused(ValueError):
    """A parameter or a limit says no; nothing was changed."""


def _params(action: Action) -> tuple[str, int, Op]:
    op = OPS.get(action.name)
    if op is None:
        raise Refused(f"{action.name} is not a Proxmox catalog action")
    p = action.parameters
    try:
        node, vmid = check_node(str(p.get("node", ""))), check_vmid(str(p.get("vmid", "")))
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if op.kind in ("snapshot", "rollback") and not SNAPSHOT_NAME.fullmatch(str(p.get("snapname", ""))):
        raise Refused(f"invalid snapshot name {str(p.get('snapname'))[:60]!r}: a letter, then 1-39 letters, digits, _ or -")
    if op.kind == "memory" and not re.fullmatch(r"\d{3,7}", str(p.get("memory_mb", ""))):
        raise Refused(f"invalid memory_mb {str(p.get('memory_mb'))[:20]!r}: whole MiB")
    if op.kind == "cores" and not re.fullmatch(r"\d{1,3}", str(p.get("cores", ""))):
        raise Refused(f"invalid cores {str(p.get('cores'))[:20]!r}: a whole number")
    return node, vmid, op


def _node_param(action: Action) -> str:
    try:
        return check_node(str(action.parameters.get("node", "")))
    except ValueError as exc:
        raise Refused(str(exc)) from None


def validate(action: Action) -> str | None:
    """Why this action's parameters are refused, or None (no PVE call needed)."""
    try:
        _node_param(action) if action.name == NODE_REBOOT else _params(action)
    except Refused as exc:
        return str(exc)
    return None


def describe(action: Action) -> str:
    """The exact API call the action makes (shown to approvers and in dry runs)."""
    if action.name == NODE_REBOOT:
        return node_reboot.describe(_node_param(action))
    node, vmid, op = _params(action)
    base = f"/api2/json/nodes/{node}/{{qemu|lxc}}/{vmid}"
    p = action.parameters
    call = {"power": f"POST {base}/status/{op.power}",
            "snapshot": f"POST {base}/snapshot snapname={p.get('snapname')}",
            "rollback": f"POST {base}/snapshot/{p.get('snapname')}/rollback",
            "memory": f"POST {base}/config memory={p.get('memory_mb')}",
            "cores": f"POST {base}/config cores={p.get('cores')}"}[op.kind]
    return call + (" (snapshot first when the storage allows)" if op.snapshot_first else "")


def _guest(client: ProxmoxClient, node: str, vmid: int) -> GuestRef:
    ref = client.find_guest(vmid=vmid)
    if ref is None:
        raise Refused(f"no guest {vmid} in the cluster")
    if ref.node != node:
        raise Refused(f"guest {vmid} ({ref.label}) is on node {ref.node}, not {node}: refusing to act on a stale plan")
    return ref


def _check_limits(client: ProxmoxClient, ref: GuestRef, op: Op, action: Action) -> tuple[str, int]:
    cfg = client.guest_config(ref)
    node = client.node_status(ref.node)
    if op.kind == "memory":
        want, have = int(str(action.parameters["memory_mb"])), int(str(cfg.get("memory", 512)))
        node_mb = int((node.get("memory") or {}).get("total", 0)) // 1024**2
        top = min(client.config.max_memory_mb, node_mb or client.config.max_memory_mb, int(have * GROWTH))
        bottom = max(MIN_MEMORY_MB, int(have / GROWTH))
        if not bottom <= want <= top:
            raise Refused(f"memory {want} MiB is outside the limits for {ref.label} ({bottom}-{top} MiB: "
                          f"currently {have}, PROXMOX_MAX_MEMORY_MB {client.config.max_memory_mb}, node {node_mb})")
        return "memory", want
    want, have = int(str(action.parameters["cores"])), int(str(cfg.get("cores", 1)))
    node_cpus = int((node.get("cpuinfo") or {}).get("cpus", 0))
    top = min(client.config.max_cores, node_cpus or client.config.max_cores, int(have * GROWTH))
    bottom = max(1, int(have / GROWTH))
    if not bottom <= want <= top:
        raise Refused(f"{want} cores is outside the limits for {ref.label} ({bottom}-{top}: currently {have}, "
                      f"PROXMOX_MAX_CORES {client.config.max_cores}, node {node_cpus} CPUs)")
    return "cores", want


def preflight(action: Action, client: ProxmoxClient | None) -> str:
    """What approvers see: the call, the guest as it is now, whether a snapshot will be taken first."""
    try:
        call = describe(action)
        if client is None:
            return call + " (Proxmox not configured: will be a dry run)"
        if action.name == NODE_REBOOT:
            return node_reboot.preflight(client, _node_param(action))
        node, vmid, op = _params(action)
        ref = _guest(client, node, vmid)
        status = client.guest_status(ref).get("status")
        bits = [call.replace("{qemu|lxc}", ref.kind), f"guest {ref.label} is {status}"]
        if op.kind in ("memory", "cores"):
            what, want = _check_limits(client, ref, op, action)
            bits.append(f"{what} -> {want} is within limits")
        if op.snapshot_first:
            bits.append("a snapshot is taken first" if client.can_snapshot(ref)
                        else "its storage does not support snapshots: no snapshot before the change")
        return "; ".join(bits)
    except (Refused, ProxmoxError) as exc:
        return f"REFUSED: {exc}" if isinstance(exc, Refused) else f"cannot check: {exc}"


def _snapshot_name(client: ProxmoxClient, ref: GuestRef) -> str:
    """`aiops_<UTC time>`, made unique among the guest's snapshots (two actions in one second)."""
    taken = {str(s.get("name")) for s in client.snapshots(ref)}
    base = "aiops_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def execute(action: Action, client: ProxmoxClient | None, *, plan_id: str = "") -> Outcome:
    try:
        if action.name == NODE_REBOOT:
            node = _node_param(action)
            if client is None:
                return Outcome(status="dry_run", output="Proxmox VE not configured; would call " + describe(action))
            return node_reboot.execute(client, node)
        node, vmid, op = _params(action)
    except Refused as exc:
        return Outcome(status="failed", output=f"refused: {exc}")
    if client is None:
        return Outcome(status="dry_run", output="Proxmox VE not configured; would call " + describe(action))
    details: dict[str, Any] = {"node": node, "vmid": vmid}
    notes: list[str] = []
    try:
        ref = _guest(client, node, vmid)
        details.update(kind=ref.kind, guest=ref.label)
        if op.kind in ("memory", "cores"):
            _check_limits(client, ref, op, action)
        if op.snapshot_first:
            if client.can_snapshot(ref):
                name = _snapshot_name(client, ref)
                snap = client.wait(client.snapshot(ref, name, f"before {action.name} by aiops {plan_id}".strip()))
                if not snap.ok:
                    return Outcome(status="failed", details=details | {"snapshot_upid": snap.upid},
                                   output=f"pre-change snapshot of {ref.label} failed, nothing changed: {snap.summary()}")
                details["snapshot"] = name
                notes.append(f"snapshot {name} taken first")
            else:
                notes.append("no snapshot first: the guest's storage does not support snapshots")
        p = action.parameters
        upid: str | None
        if op.kind == "power":
            upid = client.power(ref, op.power)
        elif op.kind == "snapshot":
            upid = client.snapshot(ref, str(p["snapname"]), f"by aiops {plan_id}".strip())
        elif op.kind == "rollback":
            upid = client.rollback(ref, str(p["snapname"]))
        elif op.kind == "memory":
            upid = client.set_resources(ref, memory_mb=int(str(p["memory_mb"])))
        else:
            upid = client.set_resources(ref, cores=int(str(p["cores"])))
        if upid is None:  # an lxc config change is applied synchronously
            cfg = client.guest_config(ref)
            key = "memory" if op.kind == "memory" else "cores"
            want = str(p["memory_mb"] if op.kind == "memory" else p["cores"])
            ok = str(cfg.get(key)) == want
            return Outcome(status="ok" if ok else "failed", details=details,
                           output="; ".join([*notes, f"{ref.label} config {key}={cfg.get(key)} (wanted {want})"]))
        task = client.wait(upid)
        details.update(upid=task.upid, exitstatus=task.exitstatus or task.status)
        return Outcome(status="ok" if task.ok else "failed", details=details,
                       output="; ".join([*notes, task.summary()])[:800])
    except Refused as exc:
        return Outcome(status="failed", output=f"refused: {exc}", details=details)
    except ProxmoxError as exc:
        return Outcome(status="failed", output="; ".join([*notes, str(exc)]), details=details)
