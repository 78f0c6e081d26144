"""A local stand-in for a MikroTik router's API service, speaking the real RouterOS API wire protocol.

RouterOS cannot run on the build machines, so `tools.routeros` is tested with the real `librouteros`
client against this double over TCP. The protocol, as MikroTik's "API" manual describes it:

* a *word* is a length prefix (1-4 bytes: <0x80, <0x4000 | 0x8000, <0x200000 | 0xC00000,
  <0x10000000 | 0xE0000000) then the bytes; a *sentence* is words ended by a zero-length word;
* a command sentence is the command word (`/interface/print`), attribute words `=name=value`, API
  attributes (`=.id=*1`, `=.proplist=name,running`), query words (`?name=x`, `?-name`, `?<n=1`,
  `?>n=1`, `?#|&!.`) and `.tag=T`; replies are `!re` per row, then `!done`; an error is
  `!trap =category=N =message=...` (then `!done`); a fatal one is `!fatal <reason>` and the router
  closes the connection; every reply to a tagged command carries the same `.tag=T`;
* login: `/login =name=U =password=P` (RouterOS >= 6.43, what librouteros' `plain` sends) answered
  `!done`, a bad password answered `!trap =message=invalid user name or password (6)`; the pre-6.43
  challenge (`/login` answered `=ret=<hex>`, then `=response=00<md5>`) works too; any other command
  before a login is `!fatal not logged in`.

The router: interfaces with counters and link state (`ether1-isp-a` flaps: once per `flap_every`
seconds of router time while it is enabled, in its counters and in /log; the router's clock follows the
wall clock, or `router.advance(seconds)`; the log starts with the last ten minutes of flaps, 20 "link
down" lines, `link-downs` 57), addresses, routes whose
`active` flag follows the interfaces (a disabled primary uplink moves the default route to the
backup), ARP, neighbours, firewall filter counters, system resource/identity/clock, and the
scheduler. A change made through the API is logged as RouterOS does, "interface settings changed by
api:<user>@<address> (/interface set <name> disabled=yes)"; `router.changed_by(...)` logs one made by a
person in Winbox. `fire(name)` runs a scheduler job's on-event script now (what the timer would do); the
script interpreter knows only the statements `tools.routeros` schedules (enable/disable/set disabled
by `[find name="x"]` or `*id`, and removing a scheduler job by name).

The API connection arrives at 127.0.0.1, which the router holds on `ether5-mgmt`; replies to the
operator (127.0.0.1/32) go via route `*4` through `bridge-lan`: both are the management path.
Usage: `with RouterOSSim() as rtr: rtr.port` (user `aiops`, password `s3cret!`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_BOOL = {True: "true", False: "false"}


class Trap(Exception):
    def __init__(self, message: str, category: int | None = None) -> None:
        super().__init__(message)
        self.message, self.category = message, category


class Fatal(Exception):
    pass


# ------------------------------------------------------------------------------ wire format --
def encode_length(n: int) -> bytes:
    if n < 0x80:
        return n.to_bytes(1, "big")
    if n < 0x4000:
        return (n | 0x8000).to_bytes(2, "big")
    if n < 0x200000:
        return (n | 0xC00000).to_bytes(3, "big")
    if n < 0x10000000:
        return (n | 0xE0000000).to_bytes(4, "big")
    return b"\xf0" + n.to_bytes(4, "big")


def encode_sentence(words: list[str]) -> bytes:
    out = b""
    for w in words:
        raw = w.encode("utf-8")
        out += encode_length(len(raw)) + raw
    return out + b"\x00"


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        got = sock.recv(n - len(buf))
        if not got:
            raise ConnectionError("peer closed")
        buf += got
    return buf


def read_word(sock: socket.socket) -> str:
    first = _recv_exact(sock, 1)[0]
    if first < 0x80:
        n = first
    elif first < 0xC0:
        n = int.from_bytes(bytes([first]) + _recv_exact(sock, 1), "big") ^ 0x8000
    elif first < 0xE0:
        n = int.from_bytes(bytes([first]) + _recv_exact(sock, 2), "big") ^ 0xC00000
    elif first < 0xF0:
        n = int.from_bytes(bytes([first]) + _recv_exact(sock, 3), "big") ^ 0xE0000000
    else:
        n = int.from_bytes(_recv_exact(sock, 4), "big")
    return _recv_exact(sock, n).decode("utf-8", errors="replace") if n else ""


def read_sentence(sock: socket.socket) -> list[str]:
    words = []
    while (w := read_word(sock)) != "":
        words.append(w)
    return words


# ----------------------------------------------------------------------------------- router --
@dataclass
class Iface:
    id: str
    name: str
    type: str = "ether"
    disabled: bool = False
    running: bool = True
    flapping: bool = False
    link_downs: int = 0
    rx_byte: int = 0
    tx_byte: int = 0
    rx_error: int = 0
    comment: str = ""
    last_down: str = ""


@dataclass
class Route:
    id: str
    dst: str
    gateway: str
    distance: int = 1
    disabled: bool = False
    dynamic: bool = False
    comment: str = ""


@dataclass
class Router:
    identity: str = "rtr-edge-01"
    ifaces: list[Iface] = field(default_factory=list)
    addresses: list[dict[str, str]] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    bridge_ports: list[dict[str, str]] = field(default_factory=list)
    arp: list[dict[str, str]] = field(default_factory=list)
    neighbors: list[dict[str, str]] = field(default_factory=list)
    filters: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, str]] = field(default_factory=list)
    scheduler: list[dict[str, str]] = field(default_factory=list)
    denied: set[str] = field(default_factory=set)  # menus the API user's group may not read ("log", ...)
    clock: int = 18 * 3600 + 5 * 60  # seconds since midnight (router-local "now")
    flap_every: int = 30  # a flapping link goes down and up once per this many seconds of router time
    _next_id: int = 0x40
    _wall: float = field(default_factory=time.monotonic)  # when the clock was last advanced
    _since_flap: float = 0.0

    def new_id(self) -> str:
        self._next_id += 1
        return f"*{self._next_id:X}"

    def stamp(self, at: int | None = None) -> str:
        c = self.clock if at is None else at
        return f"{c // 3600 % 24:02d}:{c // 60 % 60:02d}:{c % 60:02d}"

    def log(self, topics: str, message: str, at: int | None = None) -> None:
        self.logs.append({".id": self.new_id(), "time": self.stamp(at), "topics": topics, "message": message})

    def advance(self, seconds: float | None = None) -> None:
        """Router time passes: by `seconds`, or by the wall-clock time since the last call. A flapping,
        enabled link goes down and up once per `flap_every` seconds of it (a counter read twice a few
        milliseconds apart sees nothing new, as on a real router)."""
        now = time.monotonic()
        step = (now - self._wall) if seconds is None else seconds
        self._wall = now
        whole = int(step)
        self.clock += whole
        self._since_flap += whole
        while self._since_flap >= self.flap_every:
            self._since_flap -= self.flap_every
            self.flap(self.clock - int(self._since_flap))
        for i in self.ifaces:
            if not i.disabled:
                i.rx_byte += 1_000_000 * whole
                i.tx_byte += 400_000 * whole

    def flap(self, at: int | None = None) -> None:
        """Each flapping, enabled link goes down and up once (its counters and two log lines)."""
        for i in self.ifaces:
            if i.flapping and not i.disabled:
                i.link_downs += 1
                i.rx_error += 3
                i.last_down = self.stamp(at)
                self.log("interface,info", f"{i.name} link down", at)
                self.log("interface,info", f"{i.name} link up (speed 1G, full duplex)", (at or self.clock) + 2)

    def changed_by(self, name: str, user: str, disabled: bool, via: str = "winbox-3.40/tcp-msg(winbox)",
                   address: str = "192.168.88.10") -> None:
        """What RouterOS logs when someone changes an interface: who, from where, the command."""
        self.log("system,info", f"interface settings changed by {via}:{user}@{address} "
                                f"(/interface set {name} disabled={'yes' if disabled else 'no'})")

    def iface(self, name: str) -> Iface | None:
        return next((i for i in self.ifaces if i.name == name or i.id == name), None)

    def egress(self, r: Route) -> Iface | None:
        if self.iface(r.gateway):
            return self.iface(r.gateway)
        try:
            gw = ipaddress.ip_address(r.gateway)
        except ValueError:
            return None
        for a in self.addresses:
            if gw in ipaddress.ip_interface(a["address"]).network:
                return self.iface(a["interface"])
        return None

    def route_usable(self, r: Route) -> bool:
        i = self.egress(r)
        return not r.disabled and i is not None and not i.disabled and i.running

    def route_active(self, r: Route) -> bool:
        if not self.route_usable(r):
            return False
        rivals = [o for o in self.routes if o.dst == r.dst and self.route_usable(o)]
        return min(rivals, key=lambda o: (o.distance, o.id)) is r



def default_router() -> Router:
    r = Router()
    r.ifaces = [
        Iface("*1", "ether1-isp-a", flapping=True, link_downs=41, rx_byte=9_800_000_000, tx_byte=1_200_000_000,
              rx_error=310, comment="primary uplink"),
        Iface("*2", "ether2-isp-b", link_downs=1, rx_byte=120_000_000, tx_byte=80_000_000, comment="backup uplink"),
        Iface("*3", "ether3", rx_byte=5_000_000_000, tx_byte=7_000_000_000),
        Iface("*4", "ether4", rx_byte=1_000_000, tx_byte=2_000_000),
        Iface("*5", "ether5-mgmt", rx_byte=30_000_000, tx_byte=60_000_000, comment="management"),
        Iface("*6", "bridge-lan", type="bridge", rx_byte=5_000_000_000, tx_byte=7_000_000_000),
    ]
    r.addresses = [
        {".id": "*1", "address": "203.0.113.2/30", "network": "203.0.113.0", "interface": "ether1-isp-a"},
        {".id": "*2", "address": "198.51.100.2/30", "network": "198.51.100.0", "interface": "ether2-isp-b"},
        {".id": "*3", "address": "192.168.88.1/24", "network": "192.168.88.0", "interface": "bridge-lan"},
        {".id": "*4", "address": "127.0.0.1/8", "network": "127.0.0.0", "interface": "ether5-mgmt"},
    ]
    r.routes = [
        Route("*1", "0.0.0.0/0", "203.0.113.1", 1, comment="isp-a"),
        Route("*2", "0.0.0.0/0", "198.51.100.1", 2, comment="isp-b backup"),
        Route("*3", "10.10.0.0/16", "192.168.88.254", 1, comment="office vpn"),
        Route("*4", "127.0.0.1/32", "192.168.88.254", 1, comment="operator workstation"),
        Route("*A", "203.0.113.0/30", "ether1-isp-a", 0, dynamic=True),
        Route("*B", "198.51.100.0/30", "ether2-isp-b", 0, dynamic=True),
        Route("*C", "192.168.88.0/24", "bridge-lan", 0, dynamic=True),
        Route("*D", "127.0.0.0/8", "ether5-mgmt", 0, dynamic=True),
    ]
    r.bridge_ports = [{".id": "*1", "interface": "ether3", "bridge": "bridge-lan"},
                      {".id": "*2", "interface": "ether4", "bridge": "bridge-lan"}]
    r.arp = [{".id": "*1", "address": "203.0.113.1", "mac-address": "00:00:5E:00:53:01", "interface": "ether1-isp-a",
              "status": "reachable", "dynamic": "true"},
             {".id": "*2", "address": "198.51.100.1", "mac-address": "00:00:5E:00:53:02", "interface": "ether2-isp-b",
              "status": "reachable", "dynamic": "true"},
             {".id": "*3", "address": "192.168.88.254", "mac-address": "00:00:5E:00:53:FE", "interface": "bridge-lan",
              "status": "reachable", "dynamic": "true"}]
    r.neighbors = [{".id": "*1", "interface": "ether1-isp-a", "address": "203.0.113.1", "identity": "isp-a-cpe",
                    "platform": "MikroTik", "board": "CCR2004"}]
    r.filters = [{".id": "*1", "chain": "input", "action": "accept", "connection-state": "established,related",
                  "bytes": 88_000_000, "packets": 120_000},
                 {".id": "*2", "chain": "input", "action": "drop", "in-interface": "ether1-isp-a",
                  "comment": "drop wan input", "bytes": 3_400_000, "packets": 51_000},
                 {".id": "*3", "chain": "forward", "action": "fasttrack-connection", "bytes": 9_100_000_000,
                  "packets": 8_000_000}]
    # ether1-isp-a has been flapping for the last ten minutes: 20 downs, 57 since boot.
    for k in range(20, 0, -1):
        r.flap(r.clock - k * r.flap_every)
    uplink = r.iface("ether1-isp-a")
    assert uplink is not None
    uplink.link_downs = 57
    return r


class RouterOSSim:
    """The router plus its API listener. `router` holds the state tests inspect and change."""

    def __init__(self, *, user: str = "aiops", password: str = "s3cret!", router: Router | None = None) -> None:
        self.user, self.password = user, password
        self.router = router or default_router()
        self.lock = threading.RLock()
        self.commands: list[list[str]] = []  # every sentence received, for tests
        self._server: socketserver.ThreadingTCPServer | None = None

    def __enter__(self) -> RouterOSSim:
        sim = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sim.serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    # ------------------------------------------------------------------------- sessions --
    def serve(self, sock: socket.socket) -> None:
        logged_in = False
        challenge = ""
        try:
            while True:
                words = read_sentence(sock)
                if not words:
                    continue
                with self.lock:
                    self.commands.append(words)
                cmd, attrs, queries, tag, api = self._parse(words)
                suffix = [f".tag={tag}"] if tag is not None else []
                try:
                    if cmd == "/quit":
                        raise Fatal("session terminated on request")
                    if cmd == "/login":
                        logged_in, challenge, rows = self._login(attrs, challenge)
                    elif not logged_in:
                        raise Fatal("not logged in")
                    else:
                        with self.lock:
                            rows = self.run(cmd, attrs, queries, api)
                    for row in rows:
                        sock.sendall(encode_sentence(["!re", *[f"={k}={_wire(v)}" for k, v in row.items()], *suffix]))
                    done_attrs = []
                    if cmd.endswith("/add") and rows == [] and "_ret" in api:
                        done_attrs = [f"=ret={api['_ret']}"]
                    if cmd == "/login" and challenge and not logged_in:
                        done_attrs = [f"=ret={challenge}"]
                    sock.sendall(encode_sentence(["!done", *done_attrs, *suffix]))
                except Trap as t:
                    cat = [f"=category={t.category}"] if t.category is not None else []
                    sock.sendall(encode_sentence(["!trap", *cat, f"=message={t.message}", *suffix]))
                    sock.sendall(encode_sentence(["!done", *suffix]))
                except Fatal as f:
                    sock.sendall(encode_sentence(["!fatal", str(f)]))
                    return
        except (ConnectionError, OSError):
            return
        finally:
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _parse(words: list[str]) -> tuple[str, dict[str, str], list[str], str | None, dict[str, str]]:
        cmd, attrs, queries, tag, api = words[0], {}, [], None, {}
        for w in words[1:]:
            if w.startswith(".tag="):
                tag = w[5:]
            elif w.startswith("=."):
                k, _, v = w[2:].partition("=")
                api[k] = v
            elif w.startswith("="):
                k, _, v = w[1:].partition("=")
                attrs[k] = v
            elif w.startswith("?"):
                queries.append(w[1:])
            else:
                raise Trap(f"unknown word '{w}'")
        return cmd, attrs, queries, tag, api

    def _login(self, attrs: dict[str, str], challenge: str) -> tuple[bool, str, list[dict[str, Any]]]:
        if "name" not in attrs:  # pre-6.43: hand out a challenge
            return False, hashlib.md5(b"aiops-sim", usedforsecurity=False).hexdigest(), []
        if "password" in attrs:
            ok = attrs["name"] == self.user and attrs["password"] == self.password
        else:
            digest = hashlib.md5(b"\x00" + self.password.encode() + bytes.fromhex(challenge or "00"),
                                 usedforsecurity=False).hexdigest()
            ok = attrs["name"] == self.user and attrs.get("response") == "00" + digest
        if not ok:
            raise Trap("invalid user name or password (6)")
        with self.lock:
            self.router.log("system,info,account", f"user {attrs['name']} logged in via api")
        return True, "", []

    # ------------------------------------------------------------------------- commands --
    def run(self, cmd: str, attrs: dict[str, str], queries: list[str], api: dict[str, str]) -> list[dict[str, Any]]:
        r = self.router
        parts = cmd.strip("/").split("/")
        menu, verb = "/".join(parts[:-1]), parts[-1]
        tables: dict[str, Any] = {
            "interface": self._ifaces, "ip/address": lambda: r.addresses, "ip/route": self._routes,
            "interface/bridge/port": lambda: r.bridge_ports, "ip/arp": lambda: r.arp,
            "ip/neighbor": lambda: r.neighbors, "ip/firewall/filter": lambda: r.filters,
            "log": lambda: r.logs, "system/scheduler": lambda: r.scheduler,
            "system/resource": self._resource, "system/identity": lambda: [{"name": r.identity}],
            "system/clock": self._clock,
        }
        if menu not in tables:
            raise Trap("no such command prefix", 0)
        if menu in r.denied:  # the user's group policy does not allow this menu
            raise Trap("not enough permissions (9)", 0)
        r.advance()
        if verb == "print":
            rows = [dict(x) for x in tables[menu]()]
            rows = [x for x in rows if _query(queries, x)]
            if "proplist" in api:
                keep = api["proplist"].split(",")
                rows = [{k: x[k] for k in keep if k in x} for x in rows]
            return rows
        if menu == "system/scheduler" and verb == "add":
            if not attrs.get("name") or "on-event" not in attrs:
                raise Trap("missing name or on-event", 1)
            if any(s["name"] == attrs["name"] for s in r.scheduler):
                raise Trap("failure: item with such name already exists", 1)
            job = {".id": r.new_id(), "name": attrs["name"], "on-event": attrs["on-event"],
                   "interval": attrs.get("interval", "0s"), "start-time": attrs.get("start-time", "startup"),
                   "policy": attrs.get("policy", "ftp,reboot,read,write,policy,test,password,sniff,sensitive,romon"),
                   "comment": attrs.get("comment", ""), "disabled": "false", "run-count": "0"}
            r.scheduler.append(job)
            api["_ret"] = job[".id"]
            return []
        if verb == "remove" and menu == "system/scheduler":
            ids = api.get("id", attrs.get("numbers", "")).split(",")
            for i in ids:
                found = next((s for s in r.scheduler if i in (s[".id"], s["name"])), None)
                if found is None:
                    raise Trap("no such item", 0)
                r.scheduler.remove(found)
            return []
        if verb in ("set", "enable", "disable") and menu in ("interface", "ip/route"):
            target = api.get("id") or attrs.pop("numbers", "")
            if not target:
                raise Trap("missing value(s) of argument(s) numbers", 1)
            for key in attrs:
                if key not in ("disabled", "comment"):
                    raise Trap(f"unknown parameter {key}", 1)
            if "disabled" in attrs and attrs["disabled"] not in ("yes", "no", "true", "false"):
                raise Trap("value of disabled must be yes or no", 1)
            disabled = {"enable": False, "disable": True}.get(verb)
            if verb == "set" and "disabled" in attrs:
                disabled = attrs["disabled"] in ("yes", "true")
            for ident in target.split(","):
                self._set_disabled(menu, ident, disabled, attrs.get("comment"), by=self.user)
            return []
        raise Trap("no such command", 0)

    def _set_disabled(self, menu: str, ident: str, disabled: bool | None, comment: str | None,
                      by: str | None = None) -> None:
        r = self.router
        if menu == "interface":
            i = r.iface(ident)
            if i is None:
                raise Trap("no such item", 0)
            if disabled is not None and disabled != i.disabled:
                i.disabled = disabled
                i.running = not disabled
                if by:  # an API user's change is logged with who made it
                    r.changed_by(i.name, by, disabled, via="api", address="127.0.0.1")
                r.log("interface,info", f"{i.name} {'disabled' if disabled else 'enabled'}")
                if disabled:
                    r.log("interface,info", f"{i.name} link down")
            if comment is not None:
                i.comment = comment
            return
        route = next((x for x in r.routes if x.id == ident), None)
        if route is None:
            raise Trap("no such item", 0)
        if route.dynamic:
            raise Trap("failure: cannot change dynamic route", 1)
        if disabled is not None:
            route.disabled = disabled
            r.log("route,info", f"route {route.dst} via {route.gateway} {'disabled' if disabled else 'enabled'}")
        if comment is not None:
            route.comment = comment

    def _ifaces(self) -> list[dict[str, Any]]:
        r = self.router
        rows = []
        for i in r.ifaces:
            rows.append({".id": i.id, "name": i.name, "type": i.type, "mtu": 1500, "actual-mtu": 1500,
                         "mac-address": f"48:A9:8A:00:00:{int(i.id[1:], 16):02X}", "running": i.running and not i.disabled,
                         "disabled": i.disabled, "link-downs": i.link_downs, "rx-byte": i.rx_byte, "tx-byte": i.tx_byte,
                         "rx-packet": i.rx_byte // 900, "tx-packet": i.tx_byte // 900, "rx-error": i.rx_error,
                         "tx-error": 0, "rx-drop": 0, "tx-drop": 0, "comment": i.comment,
                         "last-link-down-time": f"mar/12/2026 {i.last_down}" if i.last_down else "",
                         "last-link-up-time": "mar/12/2026 18:04:53"})
        return rows

    def _routes(self) -> list[dict[str, Any]]:
        r = self.router
        rows = []
        for x in r.routes:
            eg = r.egress(x)
            gw = x.gateway if r.iface(x.gateway) else f"{x.gateway}%{eg.name if eg else 'unknown'}"
            rows.append({".id": x.id, "dst-address": x.dst, "gateway": x.gateway, "immediate-gw": gw,
                         "distance": x.distance, "active": r.route_active(x), "disabled": x.disabled,
                         "dynamic": x.dynamic, "static": not x.dynamic, "connect": x.dynamic,
                         "routing-table": "main", "comment": x.comment})
        return rows

    def _resource(self) -> list[dict[str, Any]]:
        return [{"uptime": "3w2d4h11m", "version": "7.15.3 (stable)", "build-time": "2024-07-24 10:39:19",
                 "free-memory": 812_000_000, "total-memory": 1_073_741_824, "cpu": "ARM64", "cpu-count": 4,
                 "cpu-load": 23, "free-hdd-space": 90_000_000, "total-hdd-space": 128_000_000,
                 "architecture-name": "arm64", "board-name": "RB5009UG+S+", "platform": "MikroTik"}]

    def _clock(self) -> list[dict[str, Any]]:
        c = self.router.clock
        return [{"time": f"{c // 3600 % 24:02d}:{c // 60 % 60:02d}:{c % 60:02d}", "date": "2026-03-12",
                 "time-zone-name": "UTC", "gmt-offset": "+00:00"}]

    # ------------------------------------------------------------------------ scheduler --
    def fire(self, name: str) -> None:
        """Run a scheduler job's on-event script now, as the router would when its interval elapses."""
        with self.lock:
            job = next((s for s in self.router.scheduler if s["name"] == name), None)
            if job is None:
                raise KeyError(name)
            job["run-count"] = str(int(job["run-count"]) + 1)
            self.router.log("script,info", f"running scheduled script {name}")
            for stmt in re.split(r"[;\n]", job["on-event"]):
                if stmt.strip():
                    self._script(stmt.strip())

    def _script(self, stmt: str) -> None:
        m = re.fullmatch(r'/(?P<menu>interface|ip route|system scheduler) (?P<verb>enable|disable|remove|set) '
                         r'(?:\[find (?:where )?name="(?P<name>[^"]+)"\]|(?P<id>\*[0-9A-F]+))(?: disabled=(?P<d>yes|no))?',
                         stmt)
        if m is None:
            raise ValueError(f"the simulator's script interpreter does not know: {stmt}")
        menu = m["menu"].replace(" ", "/")
        if menu == "system/scheduler":
            self.router.scheduler = [s for s in self.router.scheduler if s["name"] != m["name"]]
            return
        ident = m["id"] or m["name"]
        disabled = {"enable": False, "disable": True}.get(m["verb"], m["d"] == "yes" if m["d"] else None)
        self._set_disabled(menu, ident, disabled, None)


def _wire(v: Any) -> str:
    if isinstance(v, bool):
        return _BOOL[v]
    return str(v)


def _query(queries: list[str], row: dict[str, Any]) -> bool:
    """RouterOS query words, a stack machine: each `?x` pushes a truth value, `?#ops` combines them."""
    if not queries:
        return True
    stack: list[bool] = []
    values = {k: _wire(v) for k, v in row.items()}
    for q in queries:
        if q.startswith("#"):
            for op in q[1:]:
                if op == "!":
                    stack.append(not stack.pop())
                elif op in "|&":
                    b, a = stack.pop(), stack.pop()
                    stack.append(a or b if op == "|" else a and b)
                elif op == ".":
                    continue
                elif op.isdigit():
                    stack.append(stack[-1 - int(op)])
            continue
        if q.startswith("-"):
            stack.append(q[1:] not in values)
            continue
        m = re.fullmatch(r"(?P<op>[<>=]?)(?P<key>[^=<>]+)(?:=(?P<val>.*))?", q)
        if m is None:
            raise Trap(f"invalid query word ?{q}", 1)
        op, key, val = m["op"], m["key"], m["val"]
        have = values.get(key)
        if val is None and op == "":
            stack.append(have is not None)
        elif op in ("", "="):
            stack.append(have == _canon(val))
        elif have is None:
            stack.append(False)
        else:
            try:
                stack.append(float(have) < float(val) if op == "<" else float(have) > float(val))
            except ValueError:
                stack.append(have < val if op == "<" else have > val)
    return all(stack)


def _canon(v: str | None) -> str | None:
    return {"yes": "true", "no": "false"}.get(v or "", v)
