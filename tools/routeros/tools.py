"""Read-only LangChain tools over a `RouterOSClient`, for the diagnosis (and chat) model.

Each tool opens one API session, reads, and returns a `ToolResult` (`tools.result.result_tool`: the model
reads its compact JSON, status first; callers get the result itself);
errors (a refused login, a `!trap`) come back as a result with status `error`, never as an exception.
Nothing here can change the router.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field

from tools.result import ToolResult, result_tool
from tools.routeros.client import INTERFACE_NAME, RouterOSClient, RouterOSError, Session

_IFACE = INTERFACE_NAME.pattern


class InterfacesArgs(BaseModel):
    name: str | None = Field(None, pattern=_IFACE, description="only this interface")


class LogArgs(BaseModel):
    contains: str | None = Field(None, max_length=64, description="only lines containing this text, e.g. an interface")
    limit: int = Field(30, ge=1, le=200)


class OnInterfaceArgs(BaseModel):
    interface: str | None = Field(None, pattern=_IFACE, description="only entries on this interface")


class NoArgs(BaseModel):
    pass


_IFACE_KEYS = ("name", "type", "running", "disabled", "link-downs", "last-link-down-time", "last-link-up-time",
               "rx-byte", "tx-byte", "rx-error", "tx-error", "rx-drop", "tx-drop", "comment")


def make_routeros_tools(client: RouterOSClient) -> list[Any]:
    async def run(tool: str, query: str, fn: Any, component: str | None = None) -> ToolResult:
        def read() -> Any:
            with client.session() as s:
                return fn(s)
        try:
            data = await asyncio.to_thread(read)
        except (RouterOSError, ValueError) as exc:
            return ToolResult.failed(tool, query, str(exc))
        return ToolResult.ok(tool, query, data, signal="state", component=component or "")

    async def ros_interfaces(name: str | None = None) -> ToolResult:
        def read(s: Session) -> list[dict[str, Any]]:
            rows = s.interfaces() if name is None else [r for r in [s.interface(name)] if r]
            return [{k: r[k] for k in _IFACE_KEYS if k in r} for r in rows]
        return await run("ros_interfaces", f"/interface/print{' ?name=' + name if name else ''}", read, name)

    async def ros_log(contains: str | None = None, limit: int = 30) -> ToolResult:
        def read(s: Session) -> list[dict[str, Any]]:
            rows = [r for r in s.logs(1000) if not contains or contains in str(r.get("message", ""))]
            return [{k: r.get(k) for k in ("time", "topics", "message")} for r in rows[-limit:]]
        return await run("ros_log", f"/log/print contains={contains or ''}", read)

    async def ros_resource() -> ToolResult:
        return await run("ros_resource", "/system/resource/print", lambda s: s.resource())

    async def ros_routes() -> ToolResult:
        def read(s: Session) -> list[dict[str, Any]]:
            keep = (".id", "dst-address", "gateway", "immediate-gw", "distance", "active", "disabled", "dynamic", "comment")
            return [{k: r[k] for k in keep if k in r} for r in s.routes()]
        return await run("ros_routes", "/ip/route/print", read)

    async def ros_arp(interface: str | None = None) -> ToolResult:
        def read(s: Session) -> dict[str, Any]:
            return {"arp": [r for r in s.arp() if not interface or r.get("interface") == interface],
                    "neighbors": [r for r in s.neighbors() if not interface or r.get("interface") == interface]}
        return await run("ros_arp", f"/ip/arp/print + /ip/neighbor/print interface={interface or ''}", read,
                         interface)

    async def ros_firewall(interface: str | None = None) -> ToolResult:
        def read(s: Session) -> list[dict[str, Any]]:
            return [r for r in s.firewall_filters()
                    if not interface or interface in (r.get("in-interface"), r.get("out-interface"))]
        return await run("ros_firewall", f"/ip/firewall/filter/print stats interface={interface or ''}", read,
                         interface)

    spec: list[tuple[Callable[..., Awaitable[ToolResult]], type[BaseModel], str]] = [
        (ros_interfaces, InterfacesArgs, "Router interfaces: link state (running), disabled, link-downs, counters."),
        (ros_log, LogArgs, "The router's recent log lines (optionally only those containing a text)."),
        (ros_resource, NoArgs, "The router's CPU load, memory, uptime, version and board."),
        (ros_routes, NoArgs, "The routing table: destination, gateway, distance, which route is active."),
        (ros_arp, OnInterfaceArgs, "ARP entries and discovered neighbours (optionally on one interface)."),
        (ros_firewall, OnInterfaceArgs, "Firewall filter rules with packet/byte counters."),
    ]
    return [result_tool(fn, name=fn.__name__, args_schema=args, description=desc) for fn, args, desc in spec]
