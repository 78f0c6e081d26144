"""The stand-in hosts of a recording: sandbox directories with the recorded files, and an inventory.

A replayed remediation runs the real playbooks against these (Ansible `connection: local`, every
path under the host's `aiops_root`), so `aiops demo` executes and verifies without touching a host.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

from tools.replay.recording import RecordedIncident


def prepare_stand_ins(rec: RecordedIncident, root: Path) -> Path:
    """(Re)create the stand-in hosts' files under `root/<host>` and write an inventory for them."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for host, spec in rec.hosts.items():
        host_root = root / host
        if host_root.exists():
            shutil.rmtree(host_root)
        for f in spec.files:
            target = host_root / f.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if f.content is not None:
                target.write_text(f.content)
            else:
                target.write_bytes(b"\0" * (f.size_kb * 1024))
            if f.age_days:
                ts = datetime.now().timestamp() - f.age_days * 86400
                os.utime(target, (ts, ts))
        lines.append(f"{host} ansible_connection=local aiops_root={host_root.resolve()} aiops_sandbox=true "
                     f"ansible_python_interpreter={sys.executable}")
    inventory = root / "inventory.ini"
    inventory.write_text("\n".join(lines) + "\n")
    return inventory
