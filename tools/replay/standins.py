"""The stand-in hosts of a recording: sandbox directories with the recorded files, and an inventory.

A replayed remediation runs the real playbooks against these (Ansible `connection: local`, every
path under the host's `aiops_root`), so `aiops demo` executes and verifies without touching a host.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

from tools.replay.recording import RecordedIncident, StandInHost

# Where a stand-in keeps what `systemctl show` would say about each unit (host_read.yml reads it,
# restart_service.yml's sandbox branch writes it).
UNIT_STATE_DIR = "run/aiops-standin/systemd"


def prepare_stand_ins(rec: RecordedIncident, root: Path) -> Path:
    """(Re)create the stand-in hosts' files under `root/<host>` and write an inventory for them."""
    return prepare_hosts(rec.hosts, root)


def prepare_hosts(hosts: dict[str, StandInHost], root: Path) -> Path:
    """(Re)create stand-in hosts under `root/<host>` (files with their sizes and ages, unit states) and
    an inventory naming exactly them; the inventory's path."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for host, spec in hosts.items():
        host_root = root / host
        if host_root.exists():
            shutil.rmtree(host_root)
        host_root.mkdir(parents=True)
        for f in spec.files:
            target = host_root / f.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if f.content is not None:
                target.write_text(f.content)
            else:  # sparse: its size is what `find` and `ls` report, without writing the bytes
                with target.open("wb") as fh:
                    fh.truncate(f.size_kb * 1024)
            if f.age_days:
                ts = datetime.now().timestamp() - f.age_days * 86400
                os.utime(target, (ts, ts))
        for unit, state in spec.units.items():
            path = host_root / UNIT_STATE_DIR / f"{unit}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(state))
        extra = "".join(f" {k}={v}" for k, v in sorted(spec.vars.items()))
        lines.append(f"{host} ansible_connection=local aiops_root={host_root.resolve()} aiops_sandbox=true "
                     f"ansible_python_interpreter={sys.executable}{extra}")
    inventory = root / "inventory.ini"
    text = "\n".join(lines) + "\n"
    # Rewritten only when it changes: the parsed inventory is cached by path and mtime
    # (tools/ansible/inventory.py), so replaying the same recording again in one process (the demo's second
    # crash loop, a service re-running a recording) does not start ansible-inventory again (~0.35 s CPU).
    if not inventory.is_file() or inventory.read_text() != text:
        inventory.write_text(text)
    return inventory
