"""What the Ansible inventory says: which hosts exist and which groups they form.

The inventory is the list of machines aiops may touch. Nothing is implied: Ansible's implicit
`localhost` does not count, so the controller itself (`localhost`, `127.0.0.1`, `::1`, this host's
names) is a target only when the inventory names it explicitly. Parsed by ansible-core itself
(`ansible-inventory --list`, in a child process), so INI ranges, `:children` and `:vars` sections and
YAML inventories mean exactly what they mean to ansible-playbook.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


class InventoryError(ValueError):
    """The configured inventory cannot be parsed."""


@dataclass(frozen=True)
class Inventory:
    path: str | None
    hosts: frozenset[str] = frozenset()
    groups: dict[str, frozenset[str]] = field(default_factory=dict)  # without the implicit all/ungrouped

    def groups_of(self, host: str) -> list[str]:
        return sorted(g for g, members in self.groups.items() if host in members)


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def controller_names() -> set[str]:
    """Names under which this machine (the Ansible controller) may appear in an alert."""
    names = set(_LOOPBACK_NAMES)
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower())
            names.add(name.split(".", 1)[0].lower())
    return names


def is_controller(host: str) -> bool:
    """True when `host` names this machine: a loopback address, `localhost`, or our own host name."""
    h = host.strip().strip("[]").lower()
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return h in controller_names()


def _ansible_inventory() -> str:
    beside = Path(sys.executable).parent / "ansible-inventory"
    return str(beside) if beside.exists() else (shutil.which("ansible-inventory") or "ansible-inventory")


@lru_cache(maxsize=16)
def _parse(path: str, mtime_ns: int) -> Inventory:
    # In a child process: importing ansible here would patch sys.intern for the whole process (it
    # breaks torch, which the embeddings use). Host variables (maybe secrets) are read and dropped.
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_NOCOLOR": "1"}
    try:
        out = subprocess.run([_ansible_inventory(), "-i", path, "--list"], capture_output=True, text=True,
                             timeout=120, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InventoryError(f"cannot read Ansible inventory {path}: {exc}") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise InventoryError(f"cannot parse Ansible inventory {path}: {last[:200]}")
    data = json.loads(out.stdout)
    data.pop("_meta", None)

    def members(group: str, seen: frozenset[str] = frozenset()) -> set[str]:
        node = data.get(group) or {}
        hosts = set(node.get("hosts") or [])
        for child in node.get("children") or []:
            if child not in seen:
                hosts |= members(child, seen | {group})
        return hosts

    groups = {g: frozenset(members(g)) for g in data if g not in ("all", "ungrouped")}
    return Inventory(path=path, hosts=frozenset(members("all")), groups=groups)


def load_inventory(path: str | None) -> Inventory:
    """The inventory at `path` (cached until the file changes); empty when there is none."""
    if not path or not Path(path).exists():
        return Inventory(path=path)
    real = os.path.abspath(path)
    return _parse(real, Path(real).stat().st_mtime_ns)


def inventory_hosts(path: str | None) -> set[str]:
    """Host names the inventory names explicitly (no implicit localhost)."""
    return set(load_inventory(path).hosts)
