"""What the Ansible inventory says: which hosts exist and which groups they form.

The inventory is the list of machines aiops may touch. Nothing is implied: Ansible's implicit
`localhost` does not count, so the controller itself (`localhost`, `127.0.0.1`, `::1`, this host's
names) is a target only when the inventory names it explicitly. Parsed with ansible-core's own
InventoryManager, so INI ranges, `:children` and `:vars` sections and YAML inventories mean exactly
what they mean to ansible-playbook.
"""

from __future__ import annotations

import ipaddress
import os
import socket
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


@lru_cache(maxsize=16)
def _parse(path: str, mtime_ns: int) -> Inventory:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.utils.display import Display

    Display().verbosity = 0
    manager = InventoryManager(loader=DataLoader(), sources=[path])
    hosts = frozenset(manager.hosts)
    if not hosts and Path(path).stat().st_size > 0 and Path(path).read_text(errors="replace").strip():
        raise InventoryError(f"Ansible inventory {path} names no hosts (or cannot be parsed)")
    groups = {name: frozenset(h.name for h in group.get_hosts())
              for name, group in manager.groups.items() if name not in ("all", "ungrouped")}
    return Inventory(path=path, hosts=hosts, groups=groups)


def load_inventory(path: str | None) -> Inventory:
    """The inventory at `path` (cached until the file changes); empty when there is none."""
    if not path or not Path(path).exists():
        return Inventory(path=path)
    real = os.path.abspath(path)
    return _parse(real, Path(real).stat().st_mtime_ns)


def inventory_hosts(path: str | None) -> set[str]:
    """Host names the inventory names explicitly (no implicit localhost)."""
    return set(load_inventory(path).hosts)
