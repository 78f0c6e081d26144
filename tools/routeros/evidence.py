"""Which router interface a network alert is about, and what the router says about it.

Network alerts name an interface as `interface` (hand-written rules), or as snmp_exporter's IF-MIB
labels `ifName` / `ifDescr` / `ifAlias` (on RouterOS both ifName and ifDescr are the interface name).
`investigate` reads the interface twice (a link-downs counter that moved in between is flapping
now), the router's log lines about it, the routes that leave by it (and whether the backup took
over), ARP/neighbours on it, the firewall rules bound to it and the router's CPU/memory, each as an
`Observation` diagnosis can cite.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from tools.result import Observation
from tools.routeros.client import INTERFACE_NAME, RouterOSClient, RouterOSError, Session, _egress

TOOL = "routeros"
IFACE_LABELS = ("interface", "ifName", "ifDescr", "ifAlias")


class RouterFindings(BaseModel):
    interface: str | None = None
    observations: list[Observation] = Field(default_factory=list)
    error: str = ""


def interface_from_labels(labels: dict[str, str]) -> str | None:
    for key in IFACE_LABELS:
        v = labels.get(key, "")
        if v and INTERFACE_NAME.fullmatch(v):
            return v
    return None


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _read(session: Session, name: str, identity: str) -> list[Observation]:
    obs: list[Observation] = []
    first = session.interface(name)
    if first is None:
        obs.append(Observation(tool=TOOL, query=f"/interface/print ?name={name}", component=name, anomalous=False,
                               excerpt=f"{identity} has no interface named {name}"))
        return obs
    second = session.interface(name) or first
    downs0, downs1 = _int(first.get("link-downs")), _int(second.get("link-downs"))
    flapping = downs1 > downs0
    state = ("disabled" if second.get("disabled") else "running" if second.get("running") else "NOT running (no link)")
    obs.append(Observation(
        tool=TOOL, query=f"/interface/print ?name={name}", component=name, signal="state",
        anomalous=flapping or (not second.get("running") and not second.get("disabled")), value=float(downs1),
        excerpt=(f"{identity} {name}: {state}, link-downs {downs1} (+{downs1 - downs0} between two reads"
                 f"{': flapping now' if flapping else ''}), last link down {second.get('last-link-down-time') or '-'}, "
                 f"rx-error {second.get('rx-error', 0)}, rx {_int(second.get('rx-byte')) / 1e9:.2f} GB "
                 f"tx {_int(second.get('tx-byte')) / 1e9:.2f} GB{', comment: ' + str(second['comment']) if second.get('comment') else ''}"),
        extra={"id": second.get(".id"), "link_downs": downs1}))
    lines = [r for r in session.logs(500) if name in str(r.get("message", ""))]
    downs = [r for r in lines if "link down" in str(r.get("message"))]
    if lines:
        last = lines[-4:]
        obs.append(Observation(
            tool=TOOL, query=f"/log/print (messages about {name})", component=name, signal="log",
            anomalous=len(downs) >= 2, value=float(len(downs)),
            excerpt=(f"{len(downs)} 'link down' of {len(lines)} log lines about {name}; latest: "
                     + " | ".join(f"{r.get('time')} {r.get('message')}" for r in last))[:500]))
    addrs = session.addresses()
    routes = session.routes()
    mine = [r for r in routes if _egress(r, addrs) == name and not r.get("dynamic")]
    for r in mine:
        rivals = [o for o in routes if o.get("dst-address") == r.get("dst-address") and o is not r]
        active = next((o for o in rivals if o.get("active")), None)
        obs.append(Observation(
            tool=TOOL, query=f"/ip/route/print ?dst-address={r.get('dst-address')}", component=name, signal="state",
            anomalous=not r.get("active") and not r.get("disabled"),
            excerpt=(f"route {r.get('.id')} {r.get('dst-address')} via {r.get('gateway')} ({name}), distance "
                     f"{r.get('distance')}: {'active' if r.get('active') else 'disabled' if r.get('disabled') else 'INACTIVE'}"
                     + (f"; backup {active.get('.id')} via {active.get('gateway')} is active" if active else
                        f"; {len(rivals)} other route(s) for the same destination")),
            extra={"route_id": r.get(".id")}))
    arp = [a for a in session.arp() if a.get("interface") == name]
    nbr = [n for n in session.neighbors() if n.get("interface") == name]
    if arp or nbr:
        obs.append(Observation(
            tool=TOOL, query=f"/ip/arp/print ?interface={name}", component=name, signal="state",
            excerpt=(f"next hops on {name}: " + ", ".join(f"{a.get('address')} {a.get('status', '')}".strip() for a in arp)
                     + ("; neighbours: " + ", ".join(f"{n.get('identity')} ({n.get('board', '')})" for n in nbr) if nbr else ""))))
    rules = [f for f in session.firewall_filters() if name in (f.get("in-interface"), f.get("out-interface"))]
    for f in rules[:2]:
        obs.append(Observation(
            tool=TOOL, query=f"/ip/firewall/filter/print ?.id={f.get('.id')}", component=name, signal="state",
            excerpt=(f"firewall {f.get('chain')} {f.get('action')} rule {f.get('.id')} on {name}: "
                     f"{_int(f.get('packets'))} packets, {_int(f.get('bytes'))} bytes"
                     f"{' (' + str(f['comment']) + ')' if f.get('comment') else ''}")))
    return obs


def _investigate(client: RouterOSClient, name: str) -> list[Observation]:
    with client.session() as s:
        identity = s.identity() or client.config.host
        res = s.resource()
        obs = _read(s, name, identity)
        load = _int(res.get("cpu-load"))
        free, total = _int(res.get("free-memory")), _int(res.get("total-memory"))
        obs.append(Observation(
            tool=TOOL, query="/system/resource/print", component=identity, signal="state", value=float(load),
            anomalous=load >= 90 or (total > 0 and free / total < 0.05),
            excerpt=(f"{identity} ({res.get('board-name', '?')}, RouterOS {res.get('version', '?')}): cpu load {load}%, "
                     f"memory {100 * (1 - free / total) if total else 0:.0f}% used, up {res.get('uptime', '?')}")))
    return obs


async def investigate(client: RouterOSClient, labels: dict[str, str]) -> RouterFindings:
    name = interface_from_labels(labels)
    if name is None:
        return RouterFindings()
    try:
        obs = await asyncio.to_thread(_investigate, client, name)
    except (RouterOSError, ValueError) as exc:
        return RouterFindings(interface=name, error=str(exc))
    return RouterFindings(interface=name, observations=obs)
