"""The toolsets this product knows: one line each. Adding a toolset is its folder plus one line here.

Each line names a module that defines `TOOLSET` (a `tools.toolset.Toolset`). Order matters only for
reading: evidence is gathered and tools are offered to the model in this order.
"""

from __future__ import annotations

import importlib
from functools import cache

from tools.toolset import Toolset

TOOLSETS: tuple[str, ...] = (
    "tools.metrics.toolset",
    "tools.logs.toolset",
    "tools.ansible.toolset",
    "tools.proxmox.toolset",
    "tools.routeros.toolset",
)


@cache
def toolsets() -> tuple[Toolset, ...]:
    found: list[Toolset] = []
    for module in TOOLSETS:
        ts = importlib.import_module(module).TOOLSET
        if any(t.name == ts.name for t in found):
            raise RuntimeError(f"toolset {ts.name} is registered twice")
        found.append(ts)
    return tuple(found)


def toolset(name: str) -> Toolset:
    for ts in toolsets():
        if ts.name == name:
            return ts
    raise KeyError(f"no toolset named {name!r}")
