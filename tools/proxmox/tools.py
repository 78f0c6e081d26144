"""Read-only LangChain tools over a `ProxmoxClient`, for the diagnosis (and chat) model.

Arguments are typed and validated (vmids, node names, UPIDs) before any request is made; every tool
returns a `ToolResult` (`tools.result.result_tool`: the model reads its compact JSON, status first;
callers get the result itself), never a raised exception, and summarises RRD data instead of
returning every point. Nothing here can change the cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.proxmox.client import NODE_NAME, GuestRef, ProxmoxClient, ProxmoxError, check_vmid
from tools.proxmox.metrics import guest_series, node_series
from tools.result import Signal, ToolResult, result_tool

_NODE = NODE_NAME.pattern


class ResourcesArgs(BaseModel):
    type: Literal["vm", "node", "storage"] | None = Field(None, description="only guests, nodes or storages")


class NodeArgs(BaseModel):
    node: str = Field(pattern=_NODE, description="PVE node name, e.g. pve-01")


class GuestArgs(BaseModel):
    vmid: int = Field(ge=100, le=999_999_999, description="guest id (qemu VM or lxc container)")


class GuestMetricsArgs(GuestArgs):
    timeframe: Literal["hour", "day", "week"] = Field("hour", description="hour: 1-minute points; day: 30-minute")


class TasksArgs(NodeArgs):
    vmid: int | None = Field(None, ge=100, le=999_999_999, description="only this guest's tasks")
    errors_only: bool = Field(False, description="only tasks that failed")
    limit: int = Field(10, ge=1, le=50)


class TaskLogArgs(NodeArgs):
    upid: str = Field(pattern=r"^UPID:[A-Za-z0-9-]+:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:[a-z0-9]+:[^:\s]*:[^:\s]+:[^\s]*$",
                      description="task id from pve_recent_tasks")


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {}
    srt = sorted(values)
    step = max(1, len(values) // 12)
    return {"points": len(values), "min": round(srt[0], 4), "median": round(srt[len(srt) // 2], 4),
            "max": round(srt[-1], 4), "last": round(values[-1], 4),
            "shape": [round(sum(values[i:i + step]) / len(values[i:i + step]), 4) for i in range(0, len(values), step)]}


def make_proxmox_tools(client: ProxmoxClient) -> list[Any]:
    async def run(tool: str, query: str, fn: Any, *args: Any, component: str = "") -> ToolResult:
        try:
            data = await asyncio.to_thread(fn, *args)
        except (ProxmoxError, ValueError) as exc:
            return ToolResult.failed(tool, query, str(exc))
        signal: Signal = "metric" if tool.endswith("_metrics") else "state"
        return ToolResult.ok(tool, query, data, signal=signal, component=component)

    def guest(vmid: int) -> GuestRef:
        ref = client.find_guest(vmid=check_vmid(vmid))
        if ref is None:
            raise ValueError(f"no guest with vmid {vmid} in the cluster")
        return ref

    async def pve_cluster_resources(type: str | None = None) -> ToolResult:  # noqa: A002 - PVE's own parameter name
        def read() -> list[dict[str, Any]]:
            keep = ("id", "type", "node", "name", "status", "cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk",
                    "uptime", "storage", "plugintype")
            return [{k: r[k] for k in keep if k in r} for r in client.cluster_resources(type)]
        return await run("pve_cluster_resources", f"GET /cluster/resources?type={type or ''}", read)

    async def pve_node_status(node: str) -> ToolResult:
        return await run("pve_node_status", f"GET /nodes/{node}/status", client.node_status, node, component=node)

    async def pve_guest_status(vmid: int) -> ToolResult:
        def read() -> dict[str, Any]:
            ref = guest(vmid)
            return {"guest": ref.model_dump(), **client.guest_status(ref)}
        return await run("pve_guest_status", f"GET guest {vmid} status/current", read)

    async def pve_guest_config(vmid: int) -> ToolResult:
        def read() -> dict[str, Any]:
            ref = guest(vmid)
            cfg = {k: v for k, v in client.guest_config(ref).items() if k not in ("digest", "description")}
            return {"guest": ref.model_dump(), "config": cfg, "snapshots_supported": client.can_snapshot(ref),
                    "snapshots": [s.get("name") for s in client.snapshots(ref)]}
        return await run("pve_guest_config", f"GET guest {vmid} config", read)

    async def pve_guest_metrics(vmid: int, timeframe: str = "hour") -> ToolResult:
        def read() -> dict[str, Any]:
            ref = guest(vmid)
            return {s.metric: _summary(s.values()) for s in guest_series(client, ref, timeframe)}
        return await run("pve_guest_metrics", f"GET guest {vmid} rrddata timeframe={timeframe}", read)

    async def pve_node_metrics(node: str) -> ToolResult:
        def read() -> dict[str, Any]:
            return {s.metric: _summary(s.values()) for s in node_series(client, node)}
        return await run("pve_node_metrics", f"GET /nodes/{node}/rrddata timeframe=hour", read, component=node)

    async def pve_storage(node: str) -> ToolResult:
        return await run("pve_storage", f"GET /nodes/{node}/storage", client.storage, node)

    async def pve_recent_tasks(node: str, vmid: int | None = None, errors_only: bool = False, limit: int = 10) -> ToolResult:
        def read() -> list[dict[str, Any]]:
            return client.tasks(node, vmid=vmid, limit=limit, errors=errors_only)
        return await run("pve_recent_tasks", f"GET /nodes/{node}/tasks?vmid={vmid or ''}&errors={int(errors_only)}", read)

    async def pve_task_log(node: str, upid: str) -> ToolResult:
        return await run("pve_task_log", f"GET /nodes/{node}/tasks/{upid}/log", client.task_log, node, upid)

    spec: list[tuple[Callable[..., Awaitable[ToolResult]], type[BaseModel], str]] = [
        (pve_cluster_resources, ResourcesArgs, "List the cluster's guests, nodes and storages with status and usage."),
        (pve_node_status, NodeArgs, "One PVE node's CPU, io wait, load, memory, uptime and version."),
        (pve_node_metrics, NodeArgs, "A PVE node's RRD series over the last hour, summarised (cpu, load, memory...)."),
        (pve_guest_status, GuestArgs, "A guest's (VM or container) current status, CPU and memory, by vmid."),
        (pve_guest_config, GuestArgs, "A guest's configuration (cores, memory, disks) and its snapshots."),
        (pve_guest_metrics, GuestMetricsArgs, "A guest's RRD series (cpu, memory, network, disk), summarised."),
        (pve_storage, NodeArgs, "Storages on a node: type, used fraction, free space."),
        (pve_recent_tasks, TasksArgs, "Recent tasks on a node (optionally one guest's, or only failed ones)."),
        (pve_task_log, TaskLogArgs, "The log lines of one task (why a start, backup or snapshot failed)."),
    ]
    return [result_tool(fn, name=fn.__name__, args_schema=args, description=desc) for fn, args, desc in spec]
