"""Proxmox VE API client (proxmoxer, API-token auth): typed reads, guest operations, task waits.

proxmoxer is synchronous (requests); callers in async code use `asyncio.to_thread`. Every failure
comes back as a `ProxmoxError` with one readable line (which call, what PVE said), never a requests
traceback; a refused token is a `ProxmoxAuthError`. State-changing calls return the UPID of the
task PVE started, and `wait` polls `/nodes/{node}/tasks/{upid}/status` until it stops, then reads
its log, so a caller always knows the task's exit status rather than assuming success.

Every call goes through the process-wide breaker "proxmox" (core.resilience). Reads (GET) are retried
with back-off, except after a timeout: a hung pveproxy would cost another PROXMOX_TIMEOUT per retry, so
the read fails after one (charged; CB_FAILURE_THRESHOLD of them open the breaker). A state-changing
call (POST/PUT: power, snapshot, rollback, resize, node reboot) is tried exactly once: whether a POST that timed out
reached PVE is unknown, and starting a task twice is worse than failing once. A refusal from a healthy PVE (4xx: bad parameters, a missing privilege, a refused token) is not
charged to the breaker; a dead or failing PVE (connection errors, timeouts, 5xx) is. While the breaker
is open every call fails at once with `ProxmoxUnavailable` ("target unreachable (breaker open)").
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.resilience import CircuitOpenError, guarded_sync

GuestKind = Literal["qemu", "lxc"]
POWER_OPS = ("start", "shutdown", "reboot", "stop")
NODE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")  # a PVE node is a host name
SNAPSHOT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,39}$")  # PVE's configid format for snapshots
UPID = re.compile(r"^UPID:[A-Za-z0-9-]+:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:[a-z0-9]+:[^:\s]*:[^:\s]+:[^\s]*$")
MIN_VMID, MAX_VMID = 100, 999_999_999


class ProxmoxError(RuntimeError):
    """A PVE call failed; the message is one line naming the call."""


class ProxmoxAuthError(ProxmoxError):
    """The API token was refused (401): wrong user, token id or secret, or the token was removed."""


class ProxmoxNotConfigured(ProxmoxError):
    pass


class ProxmoxUnavailable(ProxmoxError):
    """PVE could not be reached or failed (connection error, timeout, 5xx), or its breaker is open."""


BREAKER = "proxmox"


class _Failed(Exception):
    """A PVE call's failure, carried through the breaker: `charged` when it is PVE's fault (down, 5xx)."""

    def __init__(self, error: ProxmoxError, charged: bool) -> None:
        super().__init__(str(error))
        self.error, self.charged = error, charged


class _TimedOut(_Failed):
    """PVE accepted the connection (or never completed it) but did not answer within PROXMOX_TIMEOUT:
    charged, and not retried (a retry of a hung server costs another full timeout)."""


def check_vmid(vmid: int | str) -> int:
    text = str(vmid).strip()
    if not text.isdigit() or not MIN_VMID <= int(text) <= MAX_VMID:
        raise ValueError(f"invalid vmid {vmid!r}: an integer from {MIN_VMID} to {MAX_VMID}")
    return int(text)


def check_node(node: str) -> str:
    if not isinstance(node, str) or not NODE_NAME.fullmatch(node):
        raise ValueError(f"invalid PVE node name {node!r}: letters, digits and '-', at most 63 characters")
    return node


class ProxmoxConfig(BaseModel):
    host: str  # host or host:port (8006 when no port is given)
    user: str = "root@pam"
    token_name: str
    token_value: str
    verify_ssl: bool | str = True  # or a CA bundle path (PVE's self-signed cluster CA)
    timeout: float = 30.0
    task_timeout: float = 300.0
    node_reboot_timeout: float = 900.0
    max_memory_mb: int = 65536
    max_cores: int = 16

    @classmethod
    def from_settings(cls, settings: Any) -> ProxmoxConfig | None:
        s = settings
        if not (s.PROXMOX_HOST and s.PROXMOX_TOKEN_NAME and s.PROXMOX_TOKEN_VALUE):
            return None
        verify: bool | str = str(s.PROXMOX_CA_BUNDLE) if s.PROXMOX_CA_BUNDLE else s.PROXMOX_VERIFY_SSL
        return cls(host=s.PROXMOX_HOST, user=s.PROXMOX_USER, token_name=s.PROXMOX_TOKEN_NAME,
                   token_value=s.PROXMOX_TOKEN_VALUE, verify_ssl=verify, timeout=s.PROXMOX_TIMEOUT,
                   task_timeout=s.PROXMOX_TASK_TIMEOUT, node_reboot_timeout=s.PROXMOX_NODE_REBOOT_TIMEOUT,
                   max_memory_mb=s.PROXMOX_MAX_MEMORY_MB,
                   max_cores=s.PROXMOX_MAX_CORES)


class GuestRef(BaseModel):
    """Which guest: PVE addresses a guest by node, type and vmid."""

    node: str
    kind: GuestKind
    vmid: int
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.kind}/{self.vmid}"

    @property
    def path(self) -> str:
        return f"/nodes/{self.node}/{self.kind}/{self.vmid}"


class TaskResult(BaseModel):
    """How a PVE task ended: `ok` only when it stopped with exit status `OK`."""

    upid: str
    node: str
    type: str = ""
    status: Literal["stopped", "timeout"]
    exitstatus: str = ""
    log: list[str] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "stopped" and self.exitstatus == "OK"

    def summary(self) -> str:
        if self.status == "timeout":
            return f"task {self.upid} still running after {self.seconds:.0f} s"
        tail = "; ".join(line for line in self.log[-3:] if line)
        return f"task {self.type or self.upid} on {self.node}: exit status {self.exitstatus}" + (f" ({tail})" if tail else "")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+|timed out|Name or service not known|Temporary failure in name resolution")


def _connection_line(exc: BaseException) -> str:
    """`cannot connect: [Errno 111] Connection refused` rather than urllib3's nested repr."""
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import Timeout

    if isinstance(exc, RequestsConnectionError | Timeout):
        m = _ERRNO.search(str(exc))
        return f"cannot connect: {type(exc).__name__}: {m.group(0).strip() if m else _one_line(exc)[:200]}"
    return f"{type(exc).__name__}: {_one_line(exc)}"


class ProxmoxClient:
    """One PVE cluster (any node's API answers for the whole cluster)."""

    def __init__(self, config: ProxmoxConfig, *, poll_interval: float = 1.0) -> None:
        self.config = config
        self.poll_interval = poll_interval
        self._api: Any = None

    @classmethod
    def from_settings(cls, settings: Any) -> ProxmoxClient | None:
        config = ProxmoxConfig.from_settings(settings)
        return cls(config) if config else None

    @property
    def api(self) -> Any:
        if self._api is None:
            from proxmoxer import ProxmoxAPI

            c = self.config
            self._api = ProxmoxAPI(c.host, user=c.user, token_name=c.token_name, token_value=c.token_value,
                                   verify_ssl=c.verify_ssl, timeout=c.timeout, service="PVE")
        return self._api

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """One PVE call through the "proxmox" breaker; only reads (`what` starts with GET) are retried."""
        try:
            return guarded_sync(BREAKER, lambda: self._attempt(what, fn, *args, **kwargs),
                                idempotent=what.startswith("GET"), counts=lambda e: isinstance(e, _Failed) and e.charged,
                                never_retry=(_TimedOut,))
        except _Failed as exc:
            raise exc.error from None
        except CircuitOpenError:
            raise ProxmoxUnavailable(f"proxmox {self.config.host}: {what}: target unreachable (breaker open: PVE "
                                     "failed repeatedly; retried after CB_TIMEOUT); nothing was sent") from None

    def _attempt(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from proxmoxer import ResourceException

        try:
            return fn(*args, **kwargs)
        except ResourceException as exc:
            if exc.status_code == 401:
                raise _Failed(ProxmoxAuthError(
                    f"proxmox {self.config.host}: {what}: authentication failed ({exc.status_code} {exc.content}); "
                    "check PROXMOX_USER, PROXMOX_TOKEN_NAME and PROXMOX_TOKEN_VALUE"), charged=False) from None
            raise _Failed(ProxmoxError(f"proxmox {self.config.host}: {what}: {_one_line(exc)}"),
                          charged=exc.status_code >= 500) from None
        except Exception as exc:  # requests/SSL/socket errors: one line, no traceback
            from requests.exceptions import SSLError, Timeout

            if isinstance(exc, Timeout):
                maybe = "" if what.startswith("GET") else " (it may have reached PVE: check the node's task list)"
                raise _TimedOut(ProxmoxUnavailable(
                    f"proxmox {self.config.host}: {what}: no answer within {self.config.timeout:g} s "
                    f"(PROXMOX_TIMEOUT; {type(exc).__name__}); not retried{maybe}"), charged=True) from None
            line = f"proxmox {self.config.host}: {what}: {_connection_line(exc)}"
            if isinstance(exc, SSLError):  # PVE answered with a certificate we do not trust: configuration
                raise _Failed(ProxmoxError(line), charged=False) from None
            raise _Failed(ProxmoxUnavailable(line), charged=True) from None

    # ------------------------------------------------------------------------------ reads --
    def version(self) -> dict[str, Any]:
        return dict(self._call("GET /version", self.api.version.get))

    def cluster_resources(self, type_: str | None = None) -> list[dict[str, Any]]:
        if type_ not in (None, "vm", "node", "storage"):
            raise ValueError(f"resource type must be vm, node or storage (got {type_!r})")
        params = {"type": type_} if type_ else {}
        return list(self._call("GET /cluster/resources", self.api.cluster.resources.get, **params))

    def node_status(self, node: str) -> dict[str, Any]:
        node = check_node(node)
        return dict(self._call(f"GET /nodes/{node}/status", self.api.nodes(node).status.get))

    def node_rrd(self, node: str, timeframe: str = "hour") -> list[dict[str, Any]]:
        node = check_node(node)
        return list(self._call(f"GET /nodes/{node}/rrddata", self.api.nodes(node).rrddata.get,
                               timeframe=timeframe, cf="AVERAGE"))

    def cluster_status(self) -> list[dict[str, Any]]:
        """`/cluster/status`: a `cluster` row (name, nodes, quorate; absent on a standalone node) and one
        `node` row per member (name, online)."""
        return list(self._call("GET /cluster/status", self.api.cluster.status.get))

    def ha_resources(self) -> list[dict[str, Any]]:
        """`/cluster/ha/resources`: what the HA manager owns (`sid` "vm:101", "ct:201")."""
        return list(self._call("GET /cluster/ha/resources", self.api.cluster.ha.resources.get))

    def storage(self, node: str) -> list[dict[str, Any]]:
        node = check_node(node)
        return list(self._call(f"GET /nodes/{node}/storage", self.api.nodes(node).storage.get))

    def tasks(self, node: str, *, vmid: int | None = None, limit: int = 20, errors: bool = False) -> list[dict[str, Any]]:
        node = check_node(node)
        params: dict[str, Any] = {"limit": max(1, min(limit, 500))}
        if vmid is not None:
            params["vmid"] = check_vmid(vmid)
        if errors:
            params["errors"] = 1
        return list(self._call(f"GET /nodes/{node}/tasks", self.api.nodes(node).tasks.get, **params))

    def task_status(self, node: str, upid: str) -> dict[str, Any]:
        node, upid = check_node(node), self._check_upid(upid)
        return dict(self._call("GET task status", self.api.nodes(node).tasks(upid).status.get))

    def task_log(self, node: str, upid: str, limit: int = 200) -> list[str]:
        node, upid = check_node(node), self._check_upid(upid)
        rows = self._call("GET task log", self.api.nodes(node).tasks(upid).log.get, start=0, limit=limit)
        return [str(r.get("t", "")) for r in sorted(rows, key=lambda r: r.get("n", 0))]

    def guests(self) -> list[GuestRef]:
        return [GuestRef(node=r["node"], kind=r["type"], vmid=int(r["vmid"]), name=str(r.get("name") or ""))
                for r in self.cluster_resources("vm") if r.get("type") in ("qemu", "lxc") and not r.get("template")]

    def find_guest(self, *, vmid: int | str | None = None, name: str | None = None,
                   node: str | None = None) -> GuestRef | None:
        """The guest with this vmid (or, failing that, this exact name), from the cluster's resources."""
        want = check_vmid(vmid) if vmid is not None else None
        for g in self.guests():
            if node and g.node != node:
                continue
            if (want is not None and g.vmid == want) or (want is None and name and g.name == name):
                return g
        return None

    def guest_status(self, ref: GuestRef) -> dict[str, Any]:
        return dict(self._call(f"GET {ref.path}/status/current", self._guest(ref).status.current.get))

    def guest_config(self, ref: GuestRef) -> dict[str, Any]:
        return dict(self._call(f"GET {ref.path}/config", self._guest(ref).config.get))

    def guest_rrd(self, ref: GuestRef, timeframe: str = "hour") -> list[dict[str, Any]]:
        return list(self._call(f"GET {ref.path}/rrddata", self._guest(ref).rrddata.get,
                               timeframe=timeframe, cf="AVERAGE"))

    def snapshots(self, ref: GuestRef) -> list[dict[str, Any]]:
        return [s for s in self._call(f"GET {ref.path}/snapshot", self._guest(ref).snapshot.get)
                if s.get("name") != "current"]

    def can_snapshot(self, ref: GuestRef) -> bool:
        """Whether every disk's storage supports snapshots (PVE's own feature check)."""
        res = self._call(f"GET {ref.path}/feature", self._guest(ref).feature.get, feature="snapshot")
        return bool(res.get("hasFeature"))

    # ----------------------------------------------------------------------------- writes --
    def power(self, ref: GuestRef, op: str) -> str:
        if op not in POWER_OPS:
            raise ValueError(f"unsupported guest operation {op!r} (one of {', '.join(POWER_OPS)})")
        return str(self._call(f"POST {ref.path}/status/{op}", getattr(self._guest(ref).status, op).post))

    def snapshot(self, ref: GuestRef, name: str, description: str = "") -> str:
        if not SNAPSHOT_NAME.fullmatch(name):
            raise ValueError(f"invalid snapshot name {name!r}")
        return str(self._call(f"POST {ref.path}/snapshot", self._guest(ref).snapshot.post, snapname=name,
                              description=description[:200]))

    def rollback(self, ref: GuestRef, name: str) -> str:
        if not SNAPSHOT_NAME.fullmatch(name):
            raise ValueError(f"invalid snapshot name {name!r}")
        return str(self._call(f"POST {ref.path}/snapshot/{name}/rollback", self._guest(ref).snapshot(name).rollback.post))

    def set_resources(self, ref: GuestRef, *, memory_mb: int | None = None, cores: int | None = None) -> str | None:
        """Change memory/cores. qemu: the async POST (returns a UPID); lxc: PUT (applied at once, None)."""
        data = {k: v for k, v in (("memory", memory_mb), ("cores", cores)) if v is not None}
        if not data:
            raise ValueError("nothing to change")
        guest = self._guest(ref)
        if ref.kind == "qemu":
            return str(self._call(f"POST {ref.path}/config", guest.config.post, **data))
        self._call(f"PUT {ref.path}/config", guest.config.put, **data)
        return None

    def node_reboot(self, node: str) -> None:
        """`POST /nodes/{node}/status command=reboot`. PVE answers null (no task: the node reboots itself
        two seconds later); the caller watches the node go down and come back."""
        node = check_node(node)
        self._call(f"POST /nodes/{node}/status command=reboot", self.api.nodes(node).status.post, command="reboot")

    def wait(self, upid: str, *, timeout: float | None = None) -> TaskResult:
        """Poll the task until it stops (or `timeout`), then read its log. Backs off from 50 ms to
        `poll_interval`: a fast task is seen at once, a slow one does not hammer pveproxy."""
        from proxmoxer.tools import Tasks

        upid = self._check_upid(upid)
        node = Tasks.decode_upid(upid)["node"]
        limit = self.config.task_timeout if timeout is None else timeout
        started = time.monotonic()
        delay = min(0.05, self.poll_interval)
        while True:
            status = self.task_status(node, upid)
            if status.get("status") == "stopped":
                log = self.task_log(node, upid)
                return TaskResult(upid=upid, node=node, type=str(status.get("type", "")), status="stopped",
                                  exitstatus=str(status.get("exitstatus", "")), log=log,
                                  seconds=round(time.monotonic() - started, 3))
            if time.monotonic() - started >= limit:
                return TaskResult(upid=upid, node=node, type=str(status.get("type", "")), status="timeout",
                                  seconds=round(time.monotonic() - started, 3))
            time.sleep(delay)
            delay = min(delay * 2, self.poll_interval)

    # ---------------------------------------------------------------------------- helpers --
    def _guest(self, ref: GuestRef) -> Any:
        node, vmid = check_node(ref.node), check_vmid(ref.vmid)
        if ref.kind not in ("qemu", "lxc"):
            raise ValueError(f"guest kind must be qemu or lxc (got {ref.kind!r})")
        return getattr(self.api.nodes(node), ref.kind)(vmid)

    @staticmethod
    def _check_upid(upid: str) -> str:
        if not isinstance(upid, str) or not UPID.fullmatch(upid):
            raise ValueError(f"not a PVE task id (UPID): {str(upid)[:80]!r}")
        return upid
