"""A local stand-in for the Proxmox VE HTTP API (`/api2/json`), for the real `proxmoxer` client.

Proxmox VE cannot run on the build machines, so `tools.proxmox` is tested with the real proxmoxer
(https backend) against this double. What it reproduces, as the PVE API viewer documents it:

* HTTPS on a loopback port (a throw-away self-signed certificate, so tests can also check
  certificate verification with `PROXMOX_CA_BUNDLE`), `/api2/json/...` paths, every body wrapped
  as `{"data": ...}`, form-encoded POST/PUT parameters;
* API-token auth: `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`; a missing or wrong token
  is `401` (reason `invalid token value!`, like pveproxy), a token without the privilege a call
  needs is `403 Permission check failed (/vms/101, VM.PowerMgmt)`. Privileges per path follow the
  API viewer (`VM.Audit`, `VM.PowerMgmt`, `VM.Snapshot`, `VM.Snapshot.Rollback`, `VM.Config.CPU`,
  `VM.Config.Memory`, `Sys.Audit`, `Datastore.Audit`);
* cluster resources, node status and RRD data, storage, guests (qemu and lxc) with status,
  config, snapshots and RRD data whose state the actions change;
* HA resources (`/cluster/ha/resources`, and `ha.managed` in a guest's status), the cluster's membership
  and quorum (`/cluster/status`; `cluster=""` is a standalone node);
* a node reboot (`POST /nodes/{node}/status command=reboot`, `Sys.PowerMgmt`, answered with null as PVE
  does): the node stays online for a read while pve-guests shuts its guests down (a `stopall` task and a
  shutdown task per guest, by root@pam), is offline for a few reads (`reboot_reads`; its API calls
  answer 595, `/cluster/resources` shows it `offline` and its guests `unknown`), then boots: uptime
  restarts, a `startall` task starts the guests marked `onboot`, and host-level load (`heat_node`) is gone;
* a task history per node: each running guest's start at boot (by root@pam), and `past_task`,
  `stop_by` (someone's stop/shutdown task) and `crash` (a guest killed under the host: stopped, and
  no task says so) for the tests' stories;
* tasks with real UPIDs (`UPID:node:pid:pstart:starttime:type:id:user:`): a state-changing call
  returns the UPID, `/tasks/{upid}/status` says `running` and then (after `task_polls` reads)
  `stopped` with `exitstatus` `OK` or an error, and `/tasks/{upid}/log` has the task's lines; a
  guest may be told to fail its next task (`fail_next`), e.g. a start that QEMU refuses.

Time: the simulator keeps a virtual clock. RRD points are one per minute up to that clock; a guest
that is `hot` shows high CPU (and memory) since `hot_since`: its demand is a number of cores (and
MiB), so a resize lowers the ratio from the time it was applied on. A finished task that changes a guest's
power state cools it and moves the clock forward by `settle_seconds`: what a real cluster shows a
few minutes after a reboot, so verification can read the aftermath without the test waiting. A node
may be hot too (`heat_node`: host-level CPU and/or memory at 97% since then, whatever its guests do),
until it reboots; `add_node` adds a cluster member (two nodes lose quorum when one reboots).

Faults: `outage = 500` (or 503) makes requests answer that status and change nothing (only the methods
in `outage_methods`, e.g. `{"POST"}` for a PVE that reads but fails every task start); `stall = 5.0`
makes requests whose method is in `stall_methods` hang: recorded, then held that long without being
processed or answered, then the connection is dropped (a hung pveproxy; `{"POST"}` for one that reads
but never answers a task start); stopping the server (leaving the `with`) is a PVE that is down.

Usage: `with ProxmoxSim() as pve: pve.host, pve.port, pve.token_name, pve.token_value, pve.ca_file`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ALL_PRIVS = frozenset({"VM.Audit", "VM.PowerMgmt", "VM.Snapshot", "VM.Snapshot.Rollback", "VM.Config.CPU",
                       "VM.Config.Memory", "Sys.Audit", "Sys.PowerMgmt", "Datastore.Audit"})
READ_PRIVS = frozenset({"VM.Audit", "Sys.Audit", "Datastore.Audit"})
SNAPSHOT_STORAGE_TYPES = {"zfspool", "lvmthin", "rbd", "btrfs"}  # qcow2 files on dir/nfs too (qemu)


class ApiError(Exception):
    def __init__(self, status: int, reason: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.errors = status, reason, errors


@dataclass
class Storage:
    name: str
    type: str
    total: int
    used: int
    content: str = "images,rootdir"
    shared: int = 0


@dataclass
class Guest:
    vmid: int
    name: str
    kind: str = "qemu"  # qemu | lxc
    status: str = "running"
    cores: int = 2
    memory_mb: int = 2048
    disk_storage: str = "local-zfs"
    disk_gb: int = 32
    hot_since: float | None = None  # virtual time since which the guest burns CPU
    hot_cores: float = 0.0  # while hot: how many cores' worth of work it wants (more cores: a lower ratio)
    hot_mem_mb: int = 0  # while hot on memory: how much it wants (more memory: a lower ratio)
    base_cpu: float = 0.12
    base_mem: float = 0.45
    started_at: float = 0.0
    fail_next: str | None = None  # the next task on this guest fails with this exit status
    ha_managed: bool = False  # an HA resource (vm:<vmid>): the HA manager starts and stops it
    onboot: bool = True  # started when its node boots (PVE's `onboot: 1`; PVE leaves the key out when 0)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)  # what was done to it, for tests
    cores_since: list[tuple[float, int]] = field(default_factory=list)  # (virtual time, cores) after a resize
    memory_since: list[tuple[float, int]] = field(default_factory=list)

    def cores_at(self, t: float) -> int:
        return next((c for at, c in reversed(self.cores_since) if at <= t), self.cores_since[0][1]
                    if self.cores_since else self.cores)

    def memory_at(self, t: float) -> int:
        return next((m for at, m in reversed(self.memory_since) if at <= t), self.memory_since[0][1]
                    if self.memory_since else self.memory_mb)

    def config(self) -> dict[str, Any]:
        boot = {"onboot": 1} if self.onboot else {}
        if self.kind == "qemu":
            return {**boot, "name": self.name, "cores": self.cores, "sockets": 1, "memory": str(self.memory_mb),
                    "ostype": "l26", "boot": "order=scsi0", "scsihw": "virtio-scsi-single",
                    "scsi0": f"{self.disk_storage}:vm-{self.vmid}-disk-0,iothread=1,size={self.disk_gb}G",
                    "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1", "digest": "0" * 40}
        return {**boot, "hostname": self.name, "cores": self.cores, "memory": self.memory_mb, "swap": 512,
                "ostype": "debian", "rootfs": f"{self.disk_storage}:subvol-{self.vmid}-disk-0,size={self.disk_gb}G",
                "net0": "name=eth0,bridge=vmbr0,ip=dhcp,type=veth", "digest": "0" * 40}


@dataclass
class Task:
    upid: str
    node: str
    type: str
    id: str
    user: str
    starttime: int
    lines: list[str]
    exitstatus: str = "OK"
    polls_left: int = 1
    on_finish: Any = None  # callable run once when the task stops successfully
    endtime: int | None = None

    @property
    def running(self) -> bool:
        return self.endtime is None


@dataclass
class Node:
    name: str
    maxcpu: int = 16
    memtotal: int = 64 * 1024**3
    guests: dict[int, Guest] = field(default_factory=dict)
    storages: dict[str, Storage] = field(default_factory=dict)
    online: bool = True
    booted_at: float = 0.0  # virtual time of its last boot (uptime)
    # Host-level load besides its guests (a runaway host process, ksmd, a leaking kernel module): since
    # `hot_since`, until `hot_until` (a reboot ends it), `hot_cpu` of its CPUs and `hot_mem` of its memory.
    hot_since: float | None = None
    hot_until: float | None = None
    hot_cpu: float = 0.0
    hot_mem: float = 0.0
    # A reboot in progress: the node-state reads still to go while it shuts down (online, its guests
    # stopping), then while it is offline; when both run out it has booted.
    shutting_down_reads: int = 0
    offline_reads: int = 0

    def hot(self, t: float) -> bool:
        return self.hot_since is not None and self.hot_since <= t and (self.hot_until is None or t < self.hot_until)


def _self_signed(dirpath: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pve-sim.local")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = dirpath / "pve-sim.pem", dirpath / "pve-sim.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class ProxmoxSim:
    """The simulated cluster plus its HTTPS server. State is plain attributes tests may inspect."""

    def __init__(self, *, user: str = "aiops@pve", token_name: str = "diag",
                 token_value: str = "0b5d5c1e-4c1a-4c77-9a51-7d1f0c3b2a99",
                 privileges: frozenset[str] = ALL_PRIVS, task_polls: int = 2, settle_seconds: int = 300,
                 cluster: str = "homelab") -> None:
        self.user, self.token_name, self.token_value = user, token_name, token_value
        self.tokens: dict[str, tuple[str, frozenset[str]]] = {f"{user}!{token_name}": (token_value, privileges)}
        self.task_polls = task_polls
        self.settle_seconds = settle_seconds
        # A node reboot: node-state reads while it shuts down, then while it is offline (tests may change).
        self.reboot_reads: tuple[int, int] = (2, 2)
        self.cluster = cluster
        self.offset = 0.0  # virtual clock = wall clock + offset
        self.nodes: dict[str, Node] = {}
        self.tasks: dict[str, Task] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) seen, for tests
        # An outage: while `outage` is a status (500, 503), requests whose method is in `outage_methods`
        # (all by default) are answered with it (after being recorded) and change nothing.
        self.outage: int | None = None
        self.outage_methods: frozenset[str] = frozenset({"GET", "POST", "PUT", "DELETE"})
        # A hang: while `stall` is a number of seconds, requests whose method is in `stall_methods` are
        # recorded, held that long unprocessed and unanswered, and their connection dropped.
        self.stall: float | None = None
        self.stall_methods: frozenset[str] = frozenset({"GET", "POST", "PUT", "DELETE"})
        self._pid = 0x1F00
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca_file = ""
        self._default_cluster()

    # ---------------------------------------------------------------------------- set-up --
    def _default_cluster(self) -> None:
        pve1 = Node("pve-01")
        pve1.storages = {"local": Storage("local", "dir", 100 * 1024**3, 41 * 1024**3, "iso,vztmpl,backup"),
                         "local-zfs": Storage("local-zfs", "zfspool", 900 * 1024**3, 610 * 1024**3),
                         "nfs-bulk": Storage("nfs-bulk", "nfs", 4000 * 1024**3, 3900 * 1024**3, "images,backup", 1)}
        now = self.now()
        pve1.guests = {
            101: Guest(101, "web-01", "qemu", started_at=now - 86400 * 3),
            102: Guest(102, "db-01", "qemu", cores=4, memory_mb=8192, base_cpu=0.2, base_mem=0.7,
                       started_at=now - 86400 * 9),
            103: Guest(103, "legacy-01", "qemu", disk_storage="nfs-bulk", started_at=now - 86400, onboot=False),
            201: Guest(201, "dns-01", "lxc", cores=1, memory_mb=512, disk_gb=8, started_at=now - 86400 * 20),
        }
        pve2 = Node("pve-02", maxcpu=8, memtotal=32 * 1024**3)
        pve2.storages = {"local": Storage("local", "dir", 100 * 1024**3, 20 * 1024**3, "iso,vztmpl,backup"),
                         "local-lvm": Storage("local-lvm", "lvmthin", 400 * 1024**3, 90 * 1024**3)}
        pve2.guests = {110: Guest(110, "ci-runner-01", "qemu", status="stopped", disk_storage="local-lvm")}
        self.nodes = {n.name: n for n in (pve1, pve2)}
        for n in self.nodes.values():
            n.booted_at = now - 86400 * 40
        # The task history PVE keeps: each running guest was started at boot by root; the CI runner was
        # started a week ago and shut down on purpose by an operator the next day.
        for node in self.nodes.values():
            for g in node.guests.values():
                if g.status == "running":
                    self.past_task(node, g, "start", "root@pam", g.started_at)
        ci = pve2.guests[110]
        self.past_task(pve2, ci, "start", "root@pam", now - 86400 * 7)
        self.past_task(pve2, ci, "shutdown", "alice@pve", now - 86400 * 6)

    def now(self) -> float:
        return time.time() + self.offset

    def guest(self, vmid: int) -> tuple[Node, Guest]:
        for node in self.nodes.values():
            if vmid in node.guests:
                return node, node.guests[vmid]
        raise KeyError(vmid)

    def heat(self, vmid: int, minutes_ago: float = 6, *, cpu: bool = True, memory: bool = False) -> None:
        """Make a guest burn CPU (and/or want more memory than it has) since `minutes_ago`: the incident
        the tests diagnose. The default is shorter than the sustained window (10 min) a resize needs: a
        spike, which at most a reboot addresses."""
        _, g = self.guest(vmid)
        g.hot_since = self.now() - minutes_ago * 60
        g.hot_cores = 0.96 * g.cores if cpu else 0.0
        g.hot_mem_mb = int(0.96 * g.memory_mb) if memory else 0

    def heat_node(self, name: str, minutes_ago: float = 6, *, cpu: bool = True, memory: bool = False) -> None:
        """Host-level load on a node since `minutes_ago` (not its guests: a runaway host process), CPU
        and/or memory at 97%; a reboot ends it. The default is a spike shorter than the sustained window."""
        node = self.nodes[name]
        node.hot_since, node.hot_until = self.now() - minutes_ago * 60, None
        node.hot_cpu, node.hot_mem = (0.97 if cpu else 0.0), (0.97 if memory else 0.0)

    def add_node(self, name: str, guests: dict[int, Guest] | None = None, *, maxcpu: int = 16,
                 memtotal: int = 64 * 1024**3) -> Node:
        """Another cluster member (the default cluster has two nodes: rebooting either costs quorum)."""
        node = Node(name, maxcpu=maxcpu, memtotal=memtotal, booted_at=self.now() - 86400 * 12)
        node.storages = {"local": Storage("local", "dir", 100 * 1024**3, 30 * 1024**3, "iso,vztmpl,backup"),
                         "local-lvm": Storage("local-lvm", "lvmthin", 400 * 1024**3, 120 * 1024**3)}
        node.guests = dict(guests or {})
        for g in node.guests.values():
            g.disk_storage = g.disk_storage if g.disk_storage in node.storages else "local-lvm"
            if g.status == "running":
                g.started_at = g.started_at or node.booted_at + 60
                self.past_task(node, g, "start", "root@pam", g.started_at)
        self.nodes[name] = node
        return node

    def past_task(self, node: Node, g: Guest, op: str, user: str, at: float, exitstatus: str = "OK") -> str:
        """A finished power task in the guest's history (PVE keeps them in the node's task list)."""
        self._pid += 1
        type_ = {"qemu": "qm", "lxc": "vz"}[g.kind] + op
        upid = f"UPID:{node.name}:{self._pid:08X}:{0x12D687:08X}:{int(at):08X}:{type_}:{g.vmid}:{user}:"
        self.tasks[upid] = Task(upid, node.name, type_, str(g.vmid), user, int(at), ["TASK OK"], exitstatus=exitstatus,
                                endtime=int(at) + 3)
        return upid

    def crash(self, vmid: int) -> None:
        """The guest dies under the host (the OOM killer took its QEMU process): stopped, and no task says
        so (PVE logs no stop task for a killed guest)."""
        _, g = self.guest(vmid)
        g.status, g.hot_since = "stopped", None
        g.events.append("crash")

    def stop_by(self, vmid: int, user: str = "root@pam", how: str = "shutdown") -> None:
        """Someone stopped the guest on purpose: its stop/shutdown task is in the history."""
        node, g = self.guest(vmid)
        self.past_task(node, g, how, user, self.now() - 60)
        g.status, g.hot_since = "stopped", None
        g.events.append(f"{how} by {user}")

    # ----------------------------------------------------------------------------- server --
    def __enter__(self) -> ProxmoxSim:
        self._tmp = tempfile.TemporaryDirectory(prefix="pve-sim-")
        cert, key = _self_signed(Path(self._tmp.name))
        self.ca_file = str(cert)
        sim = self

        class Handler(_Handler):
            pass

        Handler.sim = sim
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -------------------------------------------------------------------------- requests --
    def authenticate(self, header: str | None) -> frozenset[str]:
        m = re.fullmatch(r"PVEAPIToken=(?P<user>[^!\s]+@[^!\s]+)!(?P<tid>[A-Za-z][\w.-]*)=(?P<secret>\S+)", header or "")
        if not m:
            raise ApiError(401, "No ticket")
        token = self.tokens.get(f"{m['user']}!{m['tid']}")
        if token is None or token[0] != m["secret"]:
            raise ApiError(401, "invalid token value!")
        return token[1]

    def stalled(self, method: str, path: str) -> float | None:
        """How long to hold this request unanswered (None: serve it); a held request is recorded."""
        with self._lock:
            if self.stall is None or method not in self.stall_methods:
                return None
            self.requests.append((method, path))
            return self.stall

    def handle(self, method: str, path: str, params: dict[str, str], privs: frozenset[str]) -> Any:
        with self._lock:
            self.requests.append((method, path))
            if self.outage is not None and method in self.outage_methods:
                raise ApiError(self.outage, "Internal Server Error" if self.outage == 500 else "Service Unavailable")
            return self._route(method, path.strip("/").split("/"), params, privs)

    def _need(self, privs: frozenset[str], priv: str, obj: str) -> None:
        if priv not in privs:
            raise ApiError(403, f"Permission check failed ({obj}, {priv})")

    def _node(self, name: str) -> Node:
        if name not in self.nodes:
            raise ApiError(595, f"no such node '{name}'")  # pveproxy's answer for an unknown node
        return self.nodes[name]

    def _route(self, method: str, p: list[str], q: dict[str, str], privs: frozenset[str]) -> Any:
        if p == ["version"]:
            return {"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"}
        if p == ["cluster", "resources"] and method == "GET":
            return self._resources(q.get("type"), privs)
        if p == ["cluster", "ha", "resources"] and method == "GET":
            self._need(privs, "Sys.Audit", "/")
            return [{"sid": f"vm:{g.vmid}", "type": "vm", "state": "started", "max_restart": 1, "max_relocate": 1}
                    for n in self.nodes.values() for g in n.guests.values() if g.ha_managed]
        if p == ["cluster", "status"] and method == "GET":
            self._need(privs, "Sys.Audit", "/")
            return self._cluster_status()
        if p == ["nodes"] and method == "GET":
            return [self._node_row(n) for n in self.nodes.values()]
        if len(p) >= 2 and p[0] == "nodes":
            node = self._node(p[1])
            rest = p[2:]
            if rest == ["status"] and method == "POST":
                self._need(privs, "Sys.PowerMgmt", f"/nodes/{node.name}")
                return self._node_command(node, q)
            if not node.online:
                raise ApiError(595, f"Connection refused (node {node.name} is offline)")  # pveproxy cannot proxy to it
            if rest == ["status"]:
                self._need(privs, "Sys.Audit", f"/nodes/{node.name}")
                self._tick(node)
                return self._node_status(node)
            if rest == ["rrddata"]:
                self._need(privs, "Sys.Audit", f"/nodes/{node.name}")
                return self._node_rrd(node, q)
            if rest == ["storage"]:
                return [self._storage_row(node, s) for s in node.storages.values()
                        if "Datastore.Audit" in privs]
            if rest == ["tasks"]:
                self._need(privs, "Sys.Audit", f"/nodes/{node.name}")
                return self._task_list(node, q)
            if len(rest) >= 2 and rest[0] == "tasks":
                upid = unquote(rest[1])
                task = self.tasks.get(upid)
                if task is None or task.node != node.name:
                    raise ApiError(500, f"unable to parse worker upid '{upid}'")
                if rest[2:] == ["status"]:
                    return self._task_status(task)
                if rest[2:] == ["log"]:
                    start, limit = int(q.get("start", 0)), int(q.get("limit", 50))
                    return [{"n": i + 1, "t": t} for i, t in enumerate(task.lines)][start:start + limit]
            if rest in (["qemu"], ["lxc"]):
                return [self._guest_row(node, g) for g in node.guests.values() if g.kind == rest[0]]
            if len(rest) >= 3 and rest[0] in ("qemu", "lxc"):
                return self._guest_route(method, node, rest[0], rest[1], rest[2:], q, privs)
        raise ApiError(501, f"Method '{method} /{'/'.join(p)}' not implemented")

    # ------------------------------------------------------------------------ read views --
    def _resources(self, type_: str | None, privs: frozenset[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for node in self.nodes.values():
            self._tick(node)
            if type_ in (None, "node"):
                out.append({"id": f"node/{node.name}", "type": "node", **self._node_row(node)})
            if type_ in (None, "vm") and "VM.Audit" in privs:
                out += [{"id": f"{g.kind}/{g.vmid}", "type": g.kind, **self._guest_row(node, g),
                         **({} if node.online else {"status": "unknown"})} for g in node.guests.values()]
            if type_ in (None, "storage") and "Datastore.Audit" in privs:
                out += [{"id": f"storage/{node.name}/{s.name}", "type": "storage", "node": node.name,
                         "storage": s.name, "plugintype": s.type, "disk": s.used, "maxdisk": s.total,
                         "content": s.content, "shared": s.shared, "status": "available"}
                        for s in node.storages.values()]
        return out

    def _cpu(self, g: Guest, t: float) -> float:
        if g.status != "running" or t < g.started_at:
            return 0.0
        wobble = 0.02 * math.sin(t / 420.0 + g.vmid)
        if g.hot_since is not None and t >= g.hot_since and g.hot_cores:  # the work it wants, over its cores then
            return min(1.0, g.hot_cores / g.cores_at(t) + 0.01 * math.sin(t / 60.0))
        return max(0.0, g.base_cpu + wobble)

    def _mem(self, g: Guest, t: float) -> float:
        if g.status != "running" or t < g.started_at:
            return 0.0
        hot = g.hot_since is not None and t >= g.hot_since
        if hot and g.hot_mem_mb:
            return min(0.99, g.hot_mem_mb / g.memory_at(t) + 0.005 * math.sin(t / 300.0))
        return min(0.99, g.base_mem + 0.01 * math.sin(t / 300.0))

    def _guest_row(self, node: Node, g: Guest) -> dict[str, Any]:
        t = self.now()
        maxmem = g.memory_mb * 1024**2
        return {"vmid": g.vmid, "name": g.name, "node": node.name, "status": g.status, "cpu": round(self._cpu(g, t), 4),
                "maxcpu": g.cores, "mem": int(self._mem(g, t) * maxmem), "maxmem": maxmem,
                "disk": 0 if g.kind == "qemu" else int(g.disk_gb * 0.4 * 1024**3), "maxdisk": g.disk_gb * 1024**3,
                "uptime": int(t - g.started_at) if g.status == "running" else 0, "template": 0,
                "netin": 123456789, "netout": 98765432, "diskread": 5555555, "diskwrite": 4444444}

    def _node_row(self, node: Node) -> dict[str, Any]:
        if not node.online:  # what the cluster knows of a member that is down
            return {"node": node.name, "status": "offline", "level": "", "ssl_fingerprint": "AA:BB"}
        t = self.now()
        cpu = self._node_cpu(node, t)
        return {"node": node.name, "status": "online", "cpu": round(cpu, 4), "maxcpu": node.maxcpu,
                "mem": int(node.memtotal * self._node_mem(node, t)), "maxmem": node.memtotal,
                "uptime": int(t - node.booted_at), "level": "", "ssl_fingerprint": "AA:BB"}

    def _node_cpu(self, node: Node, t: float) -> float:
        if node.hot(t):
            return min(1.0, node.hot_cpu + 0.01 * math.sin(t / 60.0))
        used = sum(self._cpu(g, t) * g.cores for g in node.guests.values())
        return min(1.0, 0.03 + used / node.maxcpu)

    def _node_mem(self, node: Node, t: float) -> float:
        return min(0.99, node.hot_mem + 0.005 * math.sin(t / 300.0)) if node.hot(t) and node.hot_mem else 0.42

    def _node_status(self, node: Node) -> dict[str, Any]:
        t = self.now()
        cpu, mem = self._node_cpu(node, t), self._node_mem(node, t)
        return {"cpu": round(cpu, 4), "wait": 0.002, "loadavg": [f"{cpu * node.maxcpu:.2f}"] * 3,
                "uptime": int(t - node.booted_at), "kversion": "Linux 6.8.12-1-pve #1 SMP PREEMPT_DYNAMIC",
                "pveversion": "pve-manager/8.2.4/faa83925c9641325",
                "cpuinfo": {"cpus": node.maxcpu, "model": "AMD Ryzen 7 5700G", "sockets": 1},
                "memory": {"total": node.memtotal, "used": int(node.memtotal * mem),
                           "free": int(node.memtotal * (1 - mem))},
                "swap": {"total": 8 * 1024**3, "used": 0, "free": 8 * 1024**3},
                "rootfs": {"total": 100 * 1024**3, "used": 41 * 1024**3, "avail": 59 * 1024**3}}

    def _storage_row(self, node: Node, s: Storage) -> dict[str, Any]:
        return {"storage": s.name, "type": s.type, "content": s.content, "total": s.total, "used": s.used,
                "avail": s.total - s.used, "used_fraction": round(s.used / s.total, 6), "active": 1,
                "enabled": 1, "shared": s.shared}

    def _rrd_times(self, q: dict[str, str]) -> list[int]:
        step = {"hour": 60, "day": 1800, "week": 10800}.get(q.get("timeframe", "hour"))
        if step is None:
            raise ApiError(400, "Parameter verification failed.", {"timeframe": "value 'x' does not have a value "
                                                                   "in the enumeration 'hour, day, week, month, year, decade'"})
        end = int(self.now()) // step * step
        return [end - i * step for i in range(69, -1, -1)]

    def _node_rrd(self, node: Node, q: dict[str, str]) -> list[dict[str, Any]]:
        rows = []
        for t in self._rrd_times(q):
            cpu = self._node_cpu(node, t)
            rows.append({"time": t, "cpu": round(cpu, 5), "maxcpu": node.maxcpu, "iowait": 0.002,
                         "loadavg": round(cpu * node.maxcpu, 2), "memtotal": node.memtotal,
                         "memused": node.memtotal * self._node_mem(node, t), "swaptotal": 8 * 1024**3, "swapused": 0,
                         "roottotal": 100 * 1024**3, "rootused": 41 * 1024**3, "netin": 2.1e5, "netout": 1.7e5})
        return rows

    def _guest_rrd(self, g: Guest, q: dict[str, str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        maxmem = g.memory_mb * 1024**2
        for t in self._rrd_times(q):
            if t < g.started_at - 3600 * 24 * 365:
                rows.append({"time": t})  # no data yet: PVE leaves the fields out
                continue
            rows.append({"time": t, "cpu": round(self._cpu(g, t), 5), "maxcpu": g.cores,
                         "mem": self._mem(g, t) * maxmem, "maxmem": maxmem, "disk": 0, "maxdisk": g.disk_gb * 1024**3,
                         "netin": 1.2e4 + 100 * math.sin(t / 500), "netout": 9.5e3 + 80 * math.cos(t / 500),
                         "diskread": 2.0e4, "diskwrite": 3.1e4})
        return rows

    def _cluster_status(self) -> list[dict[str, Any]]:
        """`GET /cluster/status`: the cluster (absent on a standalone node) and each member, online or not."""
        nodes = list(self.nodes.values())
        online = sum(n.online for n in nodes)
        head = [{"type": "cluster", "id": "cluster", "name": self.cluster, "nodes": len(nodes),
                 "quorate": int(2 * online > len(nodes)), "version": 7}] if self.cluster else []
        return head + [{"type": "node", "id": f"node/{n.name}", "name": n.name, "nodeid": i + 1, "online": int(n.online),
                        "local": int(i == 0), "ip": f"10.0.0.{11 + i}", "level": ""} for i, n in enumerate(nodes)]

    def _node_command(self, node: Node, q: dict[str, str]) -> None:
        """`POST /nodes/{node}/status command=reboot`: PVE runs `(sleep 2; reboot)&` and answers null (no
        task). The node then shuts down (pve-guests stops its guests), is offline, boots, and starts the
        guests marked `onboot`; each step takes a few node-state reads here."""
        command = q.get("command", "")
        if command not in ("reboot", "shutdown"):
            raise ApiError(400, "Parameter verification failed.",
                           {"command": f"value '{command}' does not have a value in the enumeration 'reboot, shutdown'"})
        if command == "shutdown":
            raise ApiError(501, "Method 'POST /nodes/{node}/status command=shutdown' not implemented (simulator)")
        if not node.online or node.shutting_down_reads or node.offline_reads:
            raise ApiError(595, f"Connection refused (node {node.name} is offline)")
        node.shutting_down_reads, node.offline_reads = self.reboot_reads
        return None

    def _tick(self, node: Node) -> None:
        """One node-state read during a reboot: the reboot moves on one step."""
        if node.shutting_down_reads > 0:
            node.shutting_down_reads -= 1
            if node.shutting_down_reads == 0:
                self._go_down(node)
        elif not node.online and node.offline_reads > 0:
            node.offline_reads -= 1
            if node.offline_reads == 0:
                self._boot(node)

    def _go_down(self, node: Node) -> None:
        t = self.now()
        self._system_task(node, "stopall", t)
        for g in node.guests.values():
            if g.status == "running":
                self.past_task(node, g, "shutdown", "root@pam", t)
                g.status, g.hot_since = "stopped", None
                g.events.append("node reboot: shutdown")
        if node.hot_since is not None and node.hot_until is None:
            node.hot_until = t  # whatever burned on the host died with it
        node.online = False

    def _boot(self, node: Node) -> None:
        self.offset += self.settle_seconds  # the cluster a few minutes after the node came back
        t = self.now()
        node.online, node.booted_at = True, t - self.settle_seconds + 5
        self._system_task(node, "startall", node.booted_at + 20)
        for g in node.guests.values():
            if g.onboot and g.status == "stopped":
                g.status, g.started_at = "running", node.booted_at + 30
                self.past_task(node, g, "start", "root@pam", g.started_at)
                g.events.append("node reboot: started at boot")

    def _system_task(self, node: Node, type_: str, at: float) -> None:
        self._pid += 1
        upid = f"UPID:{node.name}:{self._pid:08X}:{0x12D687:08X}:{int(at):08X}:{type_}::root@pam:"
        self.tasks[upid] = Task(upid, node.name, type_, "", "root@pam", int(at), ["TASK OK"], endtime=int(at) + 5)

    def _task_list(self, node: Node, q: dict[str, str]) -> list[dict[str, Any]]:
        tasks = [t for t in self.tasks.values() if t.node == node.name]
        if q.get("vmid"):
            tasks = [t for t in tasks if t.id == q["vmid"]]
        if q.get("errors") in ("1", "true"):
            tasks = [t for t in tasks if not t.running and t.exitstatus != "OK"]
        tasks.sort(key=lambda t: -t.starttime)
        rows = []
        for t in tasks[int(q.get("start", 0)):int(q.get("start", 0)) + int(q.get("limit", 50))]:
            row = {"upid": t.upid, "node": t.node, "type": t.type, "id": t.id, "user": t.user,
                   "starttime": t.starttime, "pid": int(t.upid.split(":")[2], 16)}
            if not t.running:
                row.update(endtime=t.endtime, status=t.exitstatus)
            rows.append(row)
        return rows

    def _task_status(self, task: Task) -> dict[str, Any]:
        base = {"upid": task.upid, "node": task.node, "type": task.type, "id": task.id, "user": task.user,
                "starttime": task.starttime, "pid": int(task.upid.split(":")[2], 16), "pstart": 1234567}
        if task.running:
            task.polls_left -= 1
            if task.polls_left >= 0:
                return {**base, "status": "running"}
            self._finish(task)
        return {**base, "status": "stopped", "exitstatus": task.exitstatus}

    def _finish(self, task: Task) -> None:
        task.endtime = int(self.now())
        if task.exitstatus == "OK":
            if task.on_finish is not None:
                task.on_finish()
            task.lines.append("TASK OK")
        else:
            task.lines.append(f"TASK ERROR: {task.exitstatus}")

    def _task(self, node: Node, type_: str, id_: str, lines: list[str], on_finish: Any = None,
              guest: Guest | None = None) -> str:
        self._pid += 1
        start = int(self.now())
        user = f"{self.user}!{self.token_name}"
        upid = f"UPID:{node.name}:{self._pid:08X}:{0x12D687:08X}:{start:08X}:{type_}:{id_}:{user}:"
        task = Task(upid, node.name, type_, id_, user, start, list(lines), polls_left=self.task_polls,
                    on_finish=on_finish)
        if guest is not None and guest.fail_next:
            task.exitstatus, guest.fail_next = guest.fail_next, None
        self.tasks[upid] = task
        return upid

    # ----------------------------------------------------------------------- guest calls --
    def _guest_route(self, method: str, node: Node, kind: str, vmid_s: str, rest: list[str],
                     q: dict[str, str], privs: frozenset[str]) -> Any:
        if not vmid_s.isdigit():
            raise ApiError(400, "Parameter verification failed.", {"vmid": "type check ('integer') failed"})
        vmid = int(vmid_s)
        g = node.guests.get(vmid)
        if g is None or g.kind != kind:
            raise ApiError(500, f"Configuration file 'nodes/{node.name}/{'qemu-server' if kind == 'qemu' else 'lxc'}/{vmid}.conf' "
                                "does not exist")
        obj = f"/vms/{vmid}"
        if rest == ["status", "current"]:
            self._need(privs, "VM.Audit", obj)
            row = self._guest_row(node, g)
            ha = {"managed": 1, "state": "started" if g.status == "running" else "stopped"} if g.ha_managed else \
                {"managed": 0}
            return {**row, "qmpstatus": g.status, "ha": ha, "pid": 4242 if g.status == "running" else None}
        if rest == ["config"] and method == "GET":
            self._need(privs, "VM.Audit", obj)
            return g.config()
        if rest == ["config"] and method in ("POST", "PUT"):
            return self._set_config(method, node, g, q, privs, obj)
        if rest == ["rrddata"]:
            self._need(privs, "VM.Audit", obj)
            return self._guest_rrd(g, q)
        if rest == ["feature"]:
            self._need(privs, "VM.Audit", obj)
            return {"hasFeature": self._can_snapshot(node, g) if q.get("feature") == "snapshot" else False,
                    "nodes": [node.name]}
        if len(rest) == 2 and rest[0] == "status" and method == "POST":
            self._need(privs, "VM.PowerMgmt", obj)
            return self._power(node, g, rest[1])
        if rest == ["snapshot"] and method == "GET":
            self._need(privs, "VM.Audit", obj)
            snaps = [{"name": n, **{k: v for k, v in s.items() if not k.startswith("_")}} for n, s in g.snapshots.items()]
            return [*snaps, {"name": "current", "description": "You are here!",
                             "parent": snaps[-1]["name"] if snaps else None, "running": int(g.status == "running")}]
        if rest == ["snapshot"] and method == "POST":
            self._need(privs, "VM.Snapshot", obj)
            return self._snapshot(node, g, q)
        if len(rest) == 3 and rest[0] == "snapshot" and rest[2] == "rollback" and method == "POST":
            self._need(privs, "VM.Snapshot.Rollback", obj)
            return self._rollback(node, g, rest[1])
        raise ApiError(501, f"Method '{method} {kind}/{vmid}/{'/'.join(rest)}' not implemented")

    def _power(self, node: Node, g: Guest, op: str) -> str:
        type_ = {"qemu": "qm", "lxc": "vz"}[g.kind] + op
        if op not in ("start", "stop", "shutdown", "reboot"):
            raise ApiError(501, f"Method 'POST status/{op}' not implemented")
        if op == "start" and g.status == "running":
            return self._task_error(node, type_, g, f"VM {g.vmid} already running")
        if op in ("shutdown", "reboot") and g.status != "running":
            return self._task_error(node, type_, g, f"VM {g.vmid} not running")

        def done() -> None:
            t = self.now() + self.settle_seconds
            if op in ("start", "reboot"):
                g.status, g.started_at = "running", t - self.settle_seconds
            else:
                g.status = "stopped"
            g.hot_since = None  # a fresh boot (or no boot) is not burning CPU
            g.events.append(op)
            self.offset += self.settle_seconds  # the cluster a few minutes later

        lines = {"start": [f"start VM {g.vmid}: UPID"], "stop": [], "shutdown": [],
                 "reboot": [f"Requesting reboot of VM {g.vmid}"]}[op]
        return self._task(node, type_, str(g.vmid), lines, on_finish=done, guest=g)

    def _task_error(self, node: Node, type_: str, g: Guest, msg: str) -> str:
        upid = self._task(node, type_, str(g.vmid), [])
        self.tasks[upid].exitstatus = msg
        return upid

    def _can_snapshot(self, node: Node, g: Guest) -> bool:
        st = node.storages.get(g.disk_storage)
        return st is not None and st.type in SNAPSHOT_STORAGE_TYPES

    def _snapshot(self, node: Node, g: Guest, q: dict[str, str]) -> str:
        name = q.get("snapname", "")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{1,39}", name):
            raise ApiError(400, "Parameter verification failed.", {"snapname": "invalid format - invalid configuration ID"})
        if name in g.snapshots:
            raise ApiError(500, f"snapshot name '{name}' already used")
        type_ = "qmsnapshot" if g.kind == "qemu" else "vzsnapshot"
        if not self._can_snapshot(node, g):
            return self._task_error(node, type_, g, "snapshot feature is not available")

        def done() -> None:
            g.snapshots[name] = {"description": q.get("description", ""), "snaptime": int(self.now()),
                                 "vmstate": int(q.get("vmstate", "0") in ("1", "true")),
                                 "parent": next(reversed(g.snapshots), None) if g.snapshots else None,
                                 "_config": (g.cores, g.memory_mb)}
            g.events.append(f"snapshot:{name}")

        return self._task(node, type_, str(g.vmid), [f"snapshotting 'drive-scsi0' ({g.disk_storage}:vm-{g.vmid}-disk-0)"],
                          on_finish=done, guest=g)

    def _rollback(self, node: Node, g: Guest, name: str) -> str:
        if name not in g.snapshots:
            raise ApiError(500, f"snapshot '{name}' does not exist")
        type_ = "qmrollback" if g.kind == "qemu" else "vzrollback"

        def done() -> None:
            g.cores, g.memory_mb = g.snapshots[name]["_config"]
            g.status, g.hot_since = "stopped", None
            g.events.append(f"rollback:{name}")

        return self._task(node, type_, str(g.vmid), [f"rolling back to snapshot '{name}'"], on_finish=done, guest=g)

    def _set_config(self, method: str, node: Node, g: Guest, q: dict[str, str], privs: frozenset[str],
                    obj: str) -> str | None:
        errors = {}
        for key, priv in (("memory", "VM.Config.Memory"), ("cores", "VM.Config.CPU")):
            if key in q:
                self._need(privs, priv, obj)
                if not q[key].isdigit():
                    errors[key] = "type check ('integer') failed"
        unknown = set(q) - {"memory", "cores", "digest"}
        for k in unknown:
            errors[k] = "property is not defined in schema and the schema does not allow additional properties"
        if errors:
            raise ApiError(400, "Parameter verification failed.", errors)
        if "digest" in q and q["digest"] != g.config()["digest"]:
            raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")

        def apply() -> None:
            t = self.now()
            if "memory" in q:
                g.memory_since = g.memory_since or [(0.0, g.memory_mb)]
                g.memory_mb = int(q["memory"])
                g.memory_since.append((t, g.memory_mb))
            if "cores" in q:
                g.cores_since = g.cores_since or [(0.0, g.cores)]
                g.cores = int(q["cores"])
                g.cores_since.append((t, g.cores))
            g.events.append("config:" + ",".join(f"{k}={q[k]}" for k in sorted(q) if k != "digest"))
            if method == "POST":  # a qemu config task: read a few minutes later, like a power task
                self.offset += self.settle_seconds

        if method == "PUT":  # the synchronous variant: applied now, returns null
            apply()
            return None
        return self._task(node, "qmconfig", str(g.vmid), ["update VM config"], on_finish=apply, guest=g)


class _Handler(BaseHTTPRequestHandler):
    sim: ProxmoxSim
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict[str, Any], reason: str | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        params.update({k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()})
        if not url.path.startswith("/api2/json/"):
            self._reply(404, {"data": None}, "Not Found")
            return
        hold = self.sim.stalled(method, url.path[len("/api2/json"):])
        if hold is not None:  # hung: nothing processed, no answer, then the connection drops
            time.sleep(hold)
            self.close_connection = True
            return
        try:
            privs = self.sim.authenticate(self.headers.get("Authorization"))
            data = self.sim.handle(method, url.path[len("/api2/json"):], params, privs)
        except ApiError as err:
            body_out: dict[str, Any] = {"data": None}
            if err.errors:
                body_out["errors"] = err.errors
            self._reply(err.status, body_out, err.reason)
            return
        self._reply(200, {"data": data})

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")
