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
# Catalog playbooks only (never generated text): reading a file on the target, publishing what a read
# found, running one of a few programs by argv (no shell, the program named literally), and deleting
# the regular files a `find` listed in one module call (ours: playbooks/library/aiops_remove_files.py).
CATALOG_ONLY_MODULES = frozenset({"ansible.builtin.slurp", "ansible.builtin.set_stats", "ansible.builtin.command",
                                  "aiops_remove_files"})
COMMAND_PROGRAMS = frozenset({"systemctl", "journalctl", "apt-get", "certbot"})
TASK_KEYWORDS = frozenset({
    "name", "when", "loop", "loop_control", "register", "become", "vars", "tags", "notify",
    "changed_when", "failed_when", "ignore_errors", "with_items", "until", "retries", "delay", "no_log",
    "environment",
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
    """Return the modules a catalog playbook uses; raise PlaybookRejected if one is not allow-listed.
    `command` only with an `argv` list whose program is one of COMMAND_PROGRAMS, named literally."""
    plays = yaml.safe_load(path.read_text())
    used = lint_plays(plays, path.name, ALLOWED_MODULES | CATALOG_ONLY_MODULES)
    for play in plays:
        for section in TASK_SECTIONS:
            for task in play.get(section) or []:
                args = task.get("ansible.builtin.command")
                if "ansible.builtin.command" not in task:
                    continue
                argv = args.get("argv") if isinstance(args, dict) else None
                if (not isinstance(args, dict) or set(args) != {"argv"} or not isinstance(argv, list) or not argv
                        or argv[0] not in COMMAND_PROGRAMS):
                    raise PlaybookRejected(f"{path.name}: task {task.get('name')!r}: command only as argv: "
                                           f"[one of {', '.join(sorted(COMMAND_PROGRAMS))}, ...]")
    return used
