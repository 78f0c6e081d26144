"""The module allow-list every playbook must pass before ansible-playbook sees it.

Only modules that cannot run arbitrary commands are allowed (no shell/command/raw/script), so even a
playbook whose variables were somehow templated cannot turn into a shell.
"""

from __future__ import annotations

from pathlib import Path

import yaml

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
