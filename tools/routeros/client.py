"""MikroTik RouterOS API client (librouteros): typed reads, enable/disable, scheduler jobs.

librouteros is synchronous; async callers use `asyncio.to_thread`. A `session()` is one API
connection (login with the post-6.43 plain method). Every failure is a `RouterOSError` with one line:
a refused login is `RouterOSAuthError`, a `!trap` from the router names the command and the router's
message. Names and ids are validated before they are sent, and the scheduler scripts this module
writes only ever contain validated names/ids, so nothing from an alert or a model reaches a script.

Every connection and command goes through the process-wide breaker "routeros" (core.resilience).
Connecting (login) is retried with back-off: nothing has been asked of the router yet; but not after a
timeout (a hung router would cost another MIKROTIK_TIMEOUT per retry: one is charged and the session
fails; CB_FAILURE_THRESHOLD of them open the breaker). Commands on an
open connection are tried once: a write (`set`, `add`, `remove`) is not idempotent, and after a broken
socket a read on the same connection cannot succeed either (a caller that wants to read again opens a
new session, whose connect is retried). A `!trap` or a refused login is the router answering, so it is
not charged to the breaker; a refused connection, a timeout or a dropped socket is. While the breaker
is open, `session()` fails at once with `RouterOSUnavailable` ("target unreachable (breaker open)").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from core.resilience import CircuitOpenError, guarded_sync

BREAKER = "routeros"

# RouterOS interface names may hold more, but the ones we act on are plain: letters, digits and
# - _ . / (no quotes, brackets, $ or spaces, which would matter in a script).
INTERFACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$")
ITEM_ID = re.compile(r"^\*[0-9A-F]{1,8}$")  # RouterOS internal id, e.g. *1A
JOB_NAME = re.compile(r"^aiops-[a-z0-9-]{1,60}$")


class RouterOSError(RuntimeError):
    """A RouterOS API call failed; one line naming the command."""


class RouterOSAuthError(RouterOSError):
    pass


class RouterOSUnavailable(RouterOSError):
    """The router could not be reached or dropped the connection, or its breaker is open."""


class _Failed(Exception):
    """A RouterOS failure carried through the breaker: `charged` when the router is at fault (down)."""

    def __init__(self, error: RouterOSError, charged: bool) -> None:
        super().__init__(str(error))
        self.error, self.charged = error, charged


class _TimedOut(_Failed):
    """The router did not answer within MIKROTIK_TIMEOUT: charged, and not retried (a retry of a hung
    router costs another full timeout)."""


def _charged(exc: BaseException) -> bool:
    return isinstance(exc, _Failed) and exc.charged


def _unavailable(where: str, what: str) -> RouterOSUnavailable:
    return RouterOSUnavailable(f"routeros {where}: {what}: target unreachable (breaker open: the router failed "
                               "repeatedly; retried after CB_TIMEOUT); nothing was sent")


def check_interface(name: str) -> str:
    if not isinstance(name, str) or not INTERFACE_NAME.fullmatch(name):
        raise ValueError(f"invalid interface name {str(name)[:70]!r}: letters, digits and - _ . /, at most 63")
    return name


def check_item_id(item: str) -> str:
    if not isinstance(item, str) or not ITEM_ID.fullmatch(item.upper()):
        raise ValueError(f"invalid RouterOS item id {str(item)[:20]!r}: like *1A")
    return item.upper()


class RouterOSConfig(BaseModel):
    host: str
    port: int = 8728
    user: str
    password: str = ""
    timeout: float = 15.0
    revert_seconds: int = 300
    flap_window_seconds: int = 600  # how far back the log is read for link flaps ...
    flap_min_downs: int = 3  # ... and how many "link down" lines in it make a flapping link

    @classmethod
    def from_settings(cls, settings: Any) -> RouterOSConfig | None:
        s = settings
        if not (s.MIKROTIK_HOST and s.MIKROTIK_USER):
            return None
        return cls(host=s.MIKROTIK_HOST, port=s.MIKROTIK_PORT, user=s.MIKROTIK_USER, password=s.MIKROTIK_PASSWORD or "",
                   timeout=s.MIKROTIK_TIMEOUT, revert_seconds=s.MIKROTIK_REVERT_SECONDS,
                   flap_window_seconds=s.MIKROTIK_FLAP_WINDOW_SECONDS, flap_min_downs=s.MIKROTIK_FLAP_MIN_DOWNS)


class ManagementPath(BaseModel):
    """How our own API connection reaches the router and how its replies come back."""

    router_address: str  # the router address we connected to
    client_address: str  # our address as the router sees it (no NAT assumed)
    interfaces: list[str]  # interfaces the path uses (address holder, return-route egress, their bridges/ports)
    route_ids: list[str]  # the route(s) the router uses to answer us
    note: str = ""


class Session:
    """One logged-in API connection."""

    def __init__(self, api: Any, host: str) -> None:
        self.api = api
        self.host = host

    def _run(self, what: str, fn: Any) -> Any:
        try:
            return guarded_sync(BREAKER, lambda: self._attempt(what, fn), idempotent=False, counts=_charged)
        except _Failed as exc:
            raise exc.error from None
        except CircuitOpenError:
            raise _unavailable(self.host, what) from None

    def _attempt(self, what: str, fn: Any) -> Any:
        from librouteros.exceptions import LibRouterosError, TrapError

        try:
            return fn()
        except TrapError as exc:
            raise _Failed(RouterOSError(f"routeros {self.host}: {what}: router said: {exc}"), charged=False) from None
        except (LibRouterosError, OSError) as exc:
            raise _Failed(RouterOSUnavailable(f"routeros {self.host}: {what}: {type(exc).__name__}: {exc}"),
                          charged=True) from None

    def call(self, cmd: str, **words: Any) -> list[dict[str, Any]]:
        return list(self._run(cmd, lambda: tuple(self.api(cmd, **words))))

    def print(self, *path: str, where: Any = None, **words: Any) -> list[dict[str, Any]]:
        cmd = "/" + "/".join(path) + "/print"
        if where is not None:
            from librouteros.query import Key  # noqa: F401  (callers build `where` with Key)

            return list(self._run(cmd, lambda: tuple(self.api.path(*path).select().where(where))))
        return self.call(cmd, **words)

    # --------------------------------------------------------------------------- reads --
    def interfaces(self) -> list[dict[str, Any]]:
        return self.call("/interface/print", stats=True)

    def interface(self, name: str) -> dict[str, Any] | None:
        from librouteros.query import Key

        name = check_interface(name)
        rows = self.print("interface", where=Key("name") == name)
        return rows[0] if rows else None

    def routes(self) -> list[dict[str, Any]]:
        return self.call("/ip/route/print")

    def addresses(self) -> list[dict[str, Any]]:
        return self.call("/ip/address/print")

    def bridge_ports(self) -> list[dict[str, Any]]:
        return self.call("/interface/bridge/port/print")

    def logs(self, limit: int = 200) -> list[dict[str, Any]]:
        return self.call("/log/print")[-limit:]

    def resource(self) -> dict[str, Any]:
        rows = self.call("/system/resource/print")
        return rows[0] if rows else {}

    def clock(self) -> dict[str, Any]:
        rows = self.call("/system/clock/print")
        return rows[0] if rows else {}

    def identity(self) -> str:
        rows = self.call("/system/identity/print")
        return str(rows[0].get("name", "")) if rows else ""

    def arp(self) -> list[dict[str, Any]]:
        return self.call("/ip/arp/print")

    def neighbors(self) -> list[dict[str, Any]]:
        return self.call("/ip/neighbor/print")

    def firewall_filters(self) -> list[dict[str, Any]]:
        return self.call("/ip/firewall/filter/print", stats=True)

    def scheduler(self) -> list[dict[str, Any]]:
        return self.call("/system/scheduler/print")

    # -------------------------------------------------------------------------- writes --
    def set_interface_disabled(self, item_id: str, disabled: bool) -> None:
        self.call("/interface/set", **{".id": check_item_id(item_id), "disabled": disabled})

    def set_route_disabled(self, item_id: str, disabled: bool) -> None:
        self.call("/ip/route/set", **{".id": check_item_id(item_id), "disabled": disabled})

    def add_scheduler_job(self, name: str, on_event: str, seconds: int, comment: str) -> str:
        """A one-shot job: RouterOS runs on-event when `interval` has elapsed (the script removes its
        own job, so it runs once), the same mechanism librouteros' `Config.arm_rollback` relies on."""
        if not JOB_NAME.fullmatch(name):
            raise ValueError(f"invalid scheduler job name {name!r}")
        rows = self.call("/system/scheduler/add", name=name, interval=f"{int(seconds)}s", **{"on-event": on_event},
                         policy="read,write", comment=comment[:120])
        return str(rows[0].get("ret", "")) if rows else ""

    def remove_scheduler_job(self, name: str) -> bool:
        if not JOB_NAME.fullmatch(name):
            raise ValueError(f"invalid scheduler job name {name!r}")
        ids = [str(r[".id"]) for r in self.scheduler() if r.get("name") == name]
        for i in ids:
            self.call("/system/scheduler/remove", **{".id": i})
        return bool(ids)

    # ------------------------------------------------------------------ management path --
    def management_path(self) -> ManagementPath:
        """The interfaces and routes our own connection depends on (what a change must not cut)."""
        sock = self.api.protocol.transport.sock
        router_ip, client_ip = sock.getpeername()[0], sock.getsockname()[0]
        addrs = self.addresses()
        ifaces: list[str] = []
        for a in addrs:
            if str(a.get("address", "")).split("/")[0] == router_ip and not a.get("disabled"):
                ifaces.append(str(a["interface"]))
        route_ids: list[str] = []
        best: tuple[int, int] | None = None
        egress = ""
        client = ipaddress.ip_address(client_ip)
        for r in self.routes():
            if not r.get("active") or r.get("disabled"):
                continue
            try:
                net = ipaddress.ip_network(str(r.get("dst-address")), strict=False)
            except ValueError:
                continue
            if client.version != net.version or client not in net:
                continue
            rank = (net.prefixlen, -int(r.get("distance", 0)))
            if best is None or rank > best:
                best, route_ids, egress = rank, [str(r[".id"])], _egress(r, addrs)
        if egress:
            ifaces.append(egress)
        # A bridge's ports carry its traffic, and a port's bridge carries the port's.
        ports = self.bridge_ports() if ifaces else []
        for p in ports:
            if p.get("bridge") in ifaces and p.get("interface") not in ifaces:
                ifaces.append(str(p["interface"]))
            if p.get("interface") in ifaces and p.get("bridge") not in ifaces:
                ifaces.append(str(p["bridge"]))
        note = "" if ifaces else f"no interface holds {router_ip} (NAT or a VRF in between?)"
        return ManagementPath(router_address=router_ip, client_address=client_ip, interfaces=ifaces,
                              route_ids=route_ids, note=note)

    def close(self) -> None:
        try:
            self.api.close()
        except Exception:  # closing a dead socket is not an error worth reporting
            pass


def _egress(route: dict[str, Any], addresses: list[dict[str, Any]]) -> str:
    """The interface a route leaves by: `immediate-gw` (v7: `1.2.3.4%ether1`), an interface gateway,
    or the interface whose network holds the gateway address."""
    imm = str(route.get("immediate-gw", ""))
    if "%" in imm:
        return imm.split("%", 1)[1]
    gw = str(route.get("gateway", ""))
    try:
        ip = ipaddress.ip_address(gw)
    except ValueError:
        return gw  # an interface name
    for a in addresses:
        try:
            if ip in ipaddress.ip_interface(str(a.get("address"))).network:
                return str(a.get("interface", ""))
        except ValueError:
            continue
    return ""


class RouterOSClient:
    def __init__(self, config: RouterOSConfig) -> None:
        self.config = config

    @classmethod
    def from_settings(cls, settings: Any) -> RouterOSClient | None:
        config = RouterOSConfig.from_settings(settings)
        return cls(config) if config else None

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            api = guarded_sync(BREAKER, self._connect, idempotent=True, counts=_charged, retry_on=(_Failed,),
                               never_retry=(_TimedOut,))
        except _Failed as exc:
            raise exc.error from None
        except CircuitOpenError:
            raise _unavailable(self.where, "connect") from None
        s = Session(api, self.where)
        try:
            yield s
        finally:
            s.close()

    def _connect(self) -> Any:
        """Log in once; a refusal by the router is not charged to the breaker (nor retried)."""
        from librouteros import connect
        from librouteros.exceptions import FatalError, LibRouterosError, TrapError

        c = self.config
        try:
            return connect(host=c.host, username=c.user, password=c.password, port=c.port, timeout=c.timeout)
        except TrapError as exc:
            if "password" in str(exc) or "user" in str(exc):
                raise _Failed(RouterOSAuthError(f"routeros {self.where}: login as {c.user!r} refused ({exc}); check "
                                                "MIKROTIK_USER and MIKROTIK_PASSWORD"), charged=False) from None
            raise _Failed(RouterOSError(f"routeros {self.where}: login: router said: {exc}"), charged=False) from None
        except FatalError as exc:
            raise _Failed(RouterOSError(f"routeros {self.where}: login: fatal: {exc}"), charged=False) from None
        except TimeoutError:  # connect or login unanswered (socket.timeout)
            raise _TimedOut(RouterOSUnavailable(f"routeros {self.where}: connect: no answer within {c.timeout:g} s "
                                                "(MIKROTIK_TIMEOUT); not retried"), charged=True) from None
        except (LibRouterosError, OSError) as exc:
            raise _Failed(RouterOSUnavailable(f"routeros {self.where}: cannot connect: {type(exc).__name__}: {exc}"),
                          charged=True) from None
