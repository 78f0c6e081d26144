"""Local stand-in hosts for the security suite: an explicit inventory in a temp dir.

Nothing here touches real system files: every stand-in host is `ansible_connection=local` with an
`aiops_root` sandbox directory under pytest's tmp_path.
"""

from __future__ import annotations

import sys
from pathlib import Path


def write_inventory(path: Path, hosts: dict[str, Path | None]) -> Path:
    """An INI inventory naming `hosts` explicitly (value: the host's sandbox root, or None for none)."""
    lines = []
    for host, root in hosts.items():
        sandbox = f" aiops_root={root} aiops_sandbox=true" if root is not None else " aiops_sandbox=true"
        lines.append(f"{host} ansible_connection=local ansible_python_interpreter={sys.executable}{sandbox}")
    path.write_text("\n".join(lines) + "\n")
    return path
