"""Ansible tool: run catalog playbooks with ansible-runner, after lint, syntax-check and --check.

Only playbooks shipped in `tools/playbooks/` run, and only with modules on the allow-list; hosts that
are not in the inventory (and are not `localhost`) are never touched: those actions are reported as a
dry run after a syntax check.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PLAYBOOK_DIR = Path(__file__).parent / "playbooks"

ALLOWED_MODULES = frozenset({
    "ansible.builtin.find", "ansible.builtin.file", "ansible.builtin.copy", "ansible.builtin.stat",
    "ansible.builtin.service", "ansible.builtin.systemd_service", "ansible.builtin.debug",
    "ansible.builtin.fail", "ansible.builtin.assert", "ansible.builtin.wait_for",
})
_TASK_KEYWORDS = frozenset({
    "name", "when", "loop", "loop_control", "register", "become", "vars", "tags", "notify",
    "changed_when", "failed_when", "ignore_errors", "with_items", "until", "retries", "delay", "no_log",
})


class PlaybookRejected(ValueError):
    pass


def lint_playbook(path: Path) -> list[str]:
    """Return the modules a playbook uses; raise PlaybookRejected if one is not allow-listed."""
    plays = yaml.safe_load(path.read_text())
    if not isinstance(plays, list):
        raise PlaybookRejected(f"{path.name}: not a list of plays")
    used: list[str] = []
    for play in plays:
        for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            for task in play.get(section) or []:
                modules = [k for k in task if k not in _TASK_KEYWORDS]
                if len(modules) != 1:
                    raise PlaybookRejected(f"{path.name}: task {task.get('name')!r} has modules {modules}")
                if modules[0] not in ALLOWED_MODULES:
                    raise PlaybookRejected(f"{path.name}: module {modules[0]} is not allow-listed")
                used.append(modules[0])
    return used


def inventory_hosts(inventory: str | None) -> set[str]:
    """Host names of an INI or YAML inventory file (enough to decide reachability)."""
    hosts = {"localhost"}
    if not inventory or not Path(inventory).exists():
        return hosts
    text = Path(inventory).read_text()
    if inventory.endswith((".yml", ".yaml")):
        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, val in node.items():
                    if key == "hosts" and isinstance(val, dict):
                        hosts.update(val)
                    else:
                        walk(val)
        walk(yaml.safe_load(text))
        return hosts
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            hosts.add(line.split()[0])
    return hosts


@dataclass
class PlaybookRun:
    status: str  # "successful", "failed", "timeout", "syntax_ok"
    rc: int
    summary: str  # the lines worth showing: our debug messages, failures, recap


_RECAP = re.compile(r"^\S+\s+:\s+ok=\d+.*$", re.M)
_MSG = re.compile(r'"msg":\s*"(aiops: [^"]*)"')
_FATAL = re.compile(r"^fatal: .*$", re.M)


def _summarise(stdout: str) -> str:
    lines = [m.group(1) for m in _MSG.finditer(stdout)]
    lines += [m.group(0)[:300] for m in _FATAL.finditer(stdout)]
    lines += [" ".join(m.group(0).split()) for m in _RECAP.finditer(stdout)]
    if lines:
        return "; ".join(lines)
    tail = [ln.strip() for ln in stdout.strip().splitlines() if ln.strip()][-3:]
    return " | ".join(tail)[:500]


class AnsibleTool:
    def __init__(self, inventory: str | None = None, timeout: int = 300) -> None:
        self.inventory = inventory
        self.timeout = timeout

    def reachable(self, host: str) -> bool:
        return host in inventory_hosts(self.inventory)

    def run(self, playbook: str, host: str, extravars: dict[str, Any], *, check: bool = False,
            syntax_only: bool = False) -> PlaybookRun:
        import ansible_runner

        path = PLAYBOOK_DIR / playbook
        lint_playbook(path)
        cmdline = "--syntax-check" if syntax_only else ("--check --diff" if check else "")
        env = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "0",
               "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
               # ansible-runner finds ansible-playbook on PATH: make sure ours (beside this python) is first
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        inventory = self.inventory if self.inventory and Path(self.inventory).exists() else None
        with tempfile.TemporaryDirectory(prefix="aiops-ansible-") as tmp:
            if inventory is None:
                inventory = str(Path(tmp) / "hosts.ini")
                Path(inventory).write_text("localhost ansible_connection=local\n")
            runner = ansible_runner.run(
                private_data_dir=tmp, playbook=str(path), inventory=os.path.abspath(inventory),
                limit=None if syntax_only else host, extravars={"target": host, **extravars}, cmdline=cmdline or None,
                envvars=env, quiet=True, timeout=self.timeout,
                settings={"suppress_ansible_output": True},
            )
            stdout = runner.stdout.read() if runner.stdout else ""
        status = runner.status or "failed"
        if status != "successful" and not stdout.strip():
            stdout = f"ansible-runner status {status}, rc {runner.rc}"
        if syntax_only and runner.rc == 0:
            status = "syntax_ok"
        return PlaybookRun(status=status, rc=int(runner.rc or 0), summary=_summarise(stdout))
