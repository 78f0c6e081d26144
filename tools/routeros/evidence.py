"""Which router interface a network alert is about, and what the router says about it.

Network alerts name an interface as `interface` (hand-written rules), or as snmp_exporter's IF-MIB
labels `ifName` / `ifDescr` / `ifAlias` (on RouterOS both ifName and ifDescr are the interface name).
`investigate` reads, one item at a time (a path the API user may not read is one "could not read"
item, the other readings stay):

- the interface (state, the `link-downs` counter, errors);
- the router's log over the flap window (`MIKROTIK_FLAP_WINDOW_SECONDS` back from the router's own
  clock): "link down" lines about it make it flapping (`MIKROTIK_FLAP_MIN_DOWNS` or more; a counter
  read twice milliseconds apart shows nothing), and a "changed by <user>" line says a person (or a
  script, or aiops) changed it on purpose;
- the routes that leave by it, and whether another path can carry their destinations (a rival route
  not disabled whose interface is up): without one, disabling the interface is an outage;
- ARP/neighbours and firewall rules on it, and the router's CPU/memory.

Every reading is an `Observation` about the interface and the router, which diagnosis can cite.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from tools.result import UNREAD, Observation
from tools.routeros.client import (
    INTERFACE_NAME,
    RouterOSClient,
    RouterOSConfig,
    RouterOSError,
    Session,
    _egress,
)

TOOL = "routeros"
IFACE_LABELS = ("interface", "ifName", "ifDescr", "ifAlias")
_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                           "nov", "dec"))}
_CHANGED_BY = re.compile(r"changed by (?:[\w./-]+\([\w-]+\):|[\w-]+:)?(?P<user>[\w.@-]+?)(?:@[\d.:a-f]+)?(?:\s|$)")


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


def router_clock(clock: dict[str, Any]) -> datetime | None:
    """The router's own "now" from /system/clock (`date` 2026-03-12 or mar/12/2026, `time` 18:05:00)."""
    date, time = str(clock.get("date", "")), str(clock.get("time", ""))
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", date) or re.fullmatch(r"([a-z]{3})/(\d{2})/(\d{4})", date)
    t = re.fullmatch(r"(\d{2}):(\d{2}):(\d{2})", time)
    if not m or not t:
        return None
    if m.group(1).isdigit():
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        y, mo, d = int(m.group(3)), _MONTHS.get(m.group(1), 1), int(m.group(2))
    return datetime(y, mo, d, int(t.group(1)), int(t.group(2)), int(t.group(3)))


def log_time(stamp: str, now: datetime) -> datetime | None:
    """A log line's time: `18:04:51` (today), `mar/12 18:04:51` (this year), `2026-03-12 18:04:51`."""
    s = stamp.strip()
    if m := re.fullmatch(r"(\d{2}):(\d{2}):(\d{2})", s):
        at = now.replace(hour=int(m[1]), minute=int(m[2]), second=int(m[3]))
        return at if at <= now else at - timedelta(days=1)
    if m := re.fullmatch(r"([a-z]{3})/(\d{2}) (\d{2}):(\d{2}):(\d{2})", s):
        return datetime(now.year, _MONTHS.get(m[1], 1), int(m[2]), int(m[3]), int(m[4]), int(m[5]))
    if m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})", s):
        y, mo, d, hh, mm, ss = (int(x) for x in m.groups())
        return datetime(y, mo, d, hh, mm, ss)
    return None


class _Items:
    """One observation per item read; a failed read is one "could not read X" item."""

    def __init__(self, about: dict[str, str]) -> None:
        self.obs: list[Observation] = []
        self.about = about

    def read(self, what: str, query: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (RouterOSError, ValueError) as exc:
            self.obs.append(Observation(tool=TOOL, query=query, component=self.about.get("interface", ""),
                                        signal="state", anomalous=False, about=self.about,
                                        excerpt=f"{UNREAD} {what}: {exc}"[:400]))
            return None


def _read(s: Session, name: str, identity: str, flap: RouterOSConfig) -> list[Observation]:
    about = {"interface": name, "router": identity}
    items = _Items(about)
    row = items.read(f"interface {name}", f"/interface/print ?name={name}", lambda: s.interface(name))
    if row is None and not items.obs:
        return [Observation(tool=TOOL, query=f"/interface/print ?name={name}", component=name, anomalous=False,
                            about=about, excerpt=f"{identity} has no interface named {name}")]
    if row is not None:
        downs = _int(row.get("link-downs"))
        state = "disabled" if row.get("disabled") else "running" if row.get("running") else "NOT running (no link)"
        items.obs.append(Observation(
            tool=TOOL, query=f"/interface/print ?name={name}", component=name, signal="state", about=about,
            anomalous=not row.get("running") and not row.get("disabled"), value=float(downs),
            excerpt=(f"{identity} {name}: {state}, link-downs {downs} since boot, last link down "
                     f"{row.get('last-link-down-time') or '-'}, rx-error {row.get('rx-error', 0)}, "
                     f"rx {_int(row.get('rx-byte')) / 1e9:.2f} GB tx {_int(row.get('tx-byte')) / 1e9:.2f} GB"
                     f"{', comment: ' + str(row['comment']) if row.get('comment') else ''}"),
            extra={"id": row.get(".id"), "link_downs": downs}))
    clock = items.read("the router's clock", "/system/clock/print", lambda: s.clock())
    logs = items.read("the router's log", "/log/print", lambda: s.logs(1000))
    now = router_clock(clock or {})
    if logs is not None and now is not None:
        items.obs += _log_readings(logs, name, identity, row, now, flap, about)
    addrs = items.read("the router's addresses", "/ip/address/print", lambda: s.addresses())
    routes = items.read("the routing table", "/ip/route/print", lambda: s.routes())
    ifaces = items.read("the router's interfaces", "/interface/print", lambda: s.interfaces())
    if addrs is not None and routes is not None and ifaces is not None:
        items.obs += _route_readings(routes, addrs, ifaces, name, about)
    arp = items.read("the ARP table", "/ip/arp/print", lambda: s.arp()) or []
    nbr = items.read("the neighbour table", "/ip/neighbor/print", lambda: s.neighbors()) or []
    arp = [a for a in arp if a.get("interface") == name]
    nbr = [n for n in nbr if n.get("interface") == name]
    if arp or nbr:
        items.obs.append(Observation(
            tool=TOOL, query=f"/ip/arp/print ?interface={name}", component=name, signal="state", about=about,
            excerpt=(f"next hops on {name}: " + ", ".join(f"{a.get('address')} {a.get('status', '')}".strip() for a in arp)
                     + ("; neighbours: " + ", ".join(f"{n.get('identity')} ({n.get('board', '')})" for n in nbr)
                        if nbr else ""))))
    rules = items.read("the firewall filter rules", "/ip/firewall/filter/print", lambda: s.firewall_filters()) or []
    for f in [f for f in rules if name in (f.get("in-interface"), f.get("out-interface"))][:2]:
        items.obs.append(Observation(
            tool=TOOL, query=f"/ip/firewall/filter/print ?.id={f.get('.id')}", component=name, signal="state",
            about=about,
            excerpt=(f"firewall {f.get('chain')} {f.get('action')} rule {f.get('.id')} on {name}: "
                     f"{_int(f.get('packets'))} packets, {_int(f.get('bytes'))} bytes"
                     f"{' (' + str(f['comment']) + ')' if f.get('comment') else ''}")))
    return items.obs


def _log_readings(logs: list[dict[str, Any]], name: str, identity: str, row: dict[str, Any] | None,
                  now: datetime, flap: RouterOSConfig, about: dict[str, str]) -> list[Observation]:
    """Link flaps over the window, and who (if anyone) changed the interface, from the router's log."""
    out = []
    window = timedelta(seconds=flap.flap_window_seconds)
    mine = [r for r in logs if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", str(r.get("message", "")))]
    recent = [r for r in mine if (t := log_time(str(r.get("time", "")), now)) is not None and t >= now - window]
    downs = [r for r in recent if "link down" in str(r.get("message"))]
    minutes = flap.flap_window_seconds // 60
    flapping = len(downs) >= flap.flap_min_downs
    if mine:
        last = (recent or mine)[-3:]
        out.append(Observation(
            tool=TOOL, query=f"/log/print (messages about {name}, last {minutes} min)", component=name, signal="log",
            anomalous=flapping, value=float(len(downs)), about=about,
            excerpt=((f"{name} flapping: " if flapping else f"{name}: ")
                     + f"{len(downs)} 'link down' in the router's log in the last {minutes} min "
                       f"({len(recent)} lines about it); latest: "
                     + " | ".join(f"{r.get('time')} {r.get('message')}" for r in last))[:500]))
    if row is not None and row.get("disabled"):
        changes = [r for r in mine if _CHANGED_BY.search(str(r.get("message", "")))]
        if changes:
            who = _CHANGED_BY.search(str(changes[-1].get("message", "")))
            out.append(Observation(
                tool=TOOL, query=f"/log/print (changes of {name})", component=name, signal="log", about=about,
                excerpt=(f"{name} was disabled by a person: changed by {who['user'] if who else '?'} at "
                         f"{changes[-1].get('time')} ({changes[-1].get('message')})")[:500]))
        else:
            out.append(Observation(
                tool=TOOL, query=f"/log/print (changes of {name})", component=name, signal="log", anomalous=True,
                about=about, excerpt=(f"{name} is disabled and no one changed it in the router's log ({len(logs)} "
                                      f"lines read, none 'changed by' about {name})")))
    return out


def _route_readings(routes: list[dict[str, Any]], addrs: list[dict[str, Any]], ifaces: list[dict[str, Any]],
                    name: str, about: dict[str, str]) -> list[Observation]:
    """The routes leaving by the interface, and whether another path can carry each destination."""
    up = {str(i.get("name")) for i in ifaces if i.get("running") and not i.get("disabled")}
    out = []
    mine = [r for r in routes if _egress(r, addrs) == name and not r.get("dynamic")]
    for r in mine:
        rivals = [o for o in routes if o.get("dst-address") == r.get("dst-address") and o is not r]
        usable = [o for o in rivals if not o.get("disabled") and _egress(o, addrs) not in ("", name)
                  and _egress(o, addrs) in up]
        state = "active" if r.get("active") else "disabled" if r.get("disabled") else "INACTIVE"
        if usable:
            o = usable[0]
            path = (f"backup path available: route {o.get('.id')} via {o.get('gateway')} ({_egress(o, addrs)}, up) "
                    f"can carry {r.get('dst-address')}" + (" and is active now" if o.get("active") else ""))
        else:
            path = f"no other path for {r.get('dst-address')}: disabling {name} would cut it off"
        out.append(Observation(
            tool=TOOL, query=f"/ip/route/print ?dst-address={r.get('dst-address')}", component=name, signal="state",
            anomalous=not r.get("active") and not r.get("disabled"), about=about,
            excerpt=(f"route {r.get('.id')} {r.get('dst-address')} via {r.get('gateway')} ({name}), distance "
                     f"{r.get('distance')}: {state}; {path}"),
            extra={"route_id": r.get(".id")}))
    return out


def _investigate(client: RouterOSClient, name: str) -> list[Observation]:
    with client.session() as s:
        identity = s.identity() or client.config.host
        obs = _read(s, name, identity, client.config)
        items = _Items({"router": identity})
        res = items.read("the router's resources", "/system/resource/print", lambda: s.resource())
        obs += items.obs
        if res is not None:
            load = _int(res.get("cpu-load"))
            free, total = _int(res.get("free-memory")), _int(res.get("total-memory"))
            obs.append(Observation(
                tool=TOOL, query="/system/resource/print", component=identity, signal="state", value=float(load),
                anomalous=load >= 90 or (total > 0 and free / total < 0.05), about={"router": identity},
                excerpt=(f"{identity} ({res.get('board-name', '?')}, RouterOS {res.get('version', '?')}): cpu load "
                         f"{load}%, memory {100 * (1 - free / total) if total else 0:.0f}% used, up "
                         f"{res.get('uptime', '?')}")))
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
