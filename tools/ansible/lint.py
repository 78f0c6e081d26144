"""The module allow-list every playbook must pass before ansible-playbook sees it.

Only modules that cannot run arbitrary commands are allowed (no shell/command/raw/script), so even a
playbook whose variables were somehow templated cannot turn into a shell.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ALLOWED_MODULES = frozenset({
    "ansible.builtin.find", "ansible.builtin.file", "ansible.builtin.copy", "ansible.builtin.stat",
    "ansible.builtin.service", "ansible.builtin.systemd_service", "ansible.builtin.debug",
    "ansible.builtin.fail", "ansible.builtin.assert", "ansible.builtin.wait_for",
})
TASK_KEYWORDS = frozenset({
    "name", "when", "loop", "loop_control", "register", "become", "vars", "tags", "notify",
    "changed_when", "failed_when", "ignore_errors", "with_items", "until", "retries", "delay", "no_log",
})
TASK_SECTIONS = ("pre_tasks", "tasks", "post_tasks", "handlers")


class PlaybookRejected(ValueError):
    pass


def lint_plays(plays: Any, name: str, allowed: Iterable[str] = ALLOWED_MODULES,
               keywords: Iterable[str] = TASK_KEYWORDS) -> list[str]:
    """The modules parsed plays use; PlaybookRejected if one is not in `allowed`."""
    allowed, keywords = frozenset(allowed), frozenset(keywords)
    if not isinstance(plays, list):
        raise PlaybookRejected(f"{name}: not a list of plays")
    used: list[str] = []
    for play in plays:
        if not isinstance(play, dict):
            raise PlaybookRejected(f"{name}: a play is not a mapping")
        for section in TASK_SECTIONS:
            tasks = play.get(section) or []
            if not isinstance(tasks, list):
                raise PlaybookRejected(f"{name}: {section} is not a list of tasks")
            for task in tasks:
                if not isinstance(task, dict):
                    raise PlaybookRejected(f"{name}: a task in {section} is not a mapping")
                modules = [k for k in task if k not in keywords]
                if len(modules) != 1:
                    raise PlaybookRejected(f"{name}: task {task.get('name')!r} has modules {modules}")
                if modules[0] not in allowed:
                    raise PlaybookRejected(f"{name}: module {modules[0]} is not allow-listed")
                used.append(modules[0])
    return used


def lint_playbook(path: Path) -> list[str]:
    """Return the modules a playbook uses; raise PlaybookRejected if one is not allow-listed."""
    return lint_plays(yaml.safe_load(path.read_text()), path.name)
